"""The report card of a run: `llmlab report --run_dir R` writes R/report/report.md and a self-contained report.html.

    facts.py          read what the run's stages left on disk (configs, metrics, zip view, evals, speedrun.json)
    lab_sections.py   the labs' sections: each lab writes its own into labs/<lab>/section.json
    plots.py          the loss curves PNG
    sections.py       facts -> sections of paragraphs, tables and code blocks
    render.py         sections -> Markdown and HTML; write_report(run_dir)
"""
