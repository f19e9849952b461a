"""Render the report's sections (llmlab.report.sections) as Markdown and as one self-contained HTML page, and write
both into <run_dir>/report/:

    report.md          Markdown; the loss curves are the PNG beside it, the labs' plots those in their folders
    report.html        the same, with the PNGs embedded as base64 and the style inline: no network, one file
    loss_curves.png

    from llmlab.report.render import write_report
    md_path, html_path = write_report(Path("runs/speedrun"))    # regenerate at any time from what the run holds
"""

from __future__ import annotations

import base64
import html
import re
from datetime import datetime, timezone
from pathlib import Path

from llmlab.files import atomic_write_bytes, atomic_write_text
from llmlab.layout import RunDir
from llmlab.report.facts import collect
from llmlab.report.plots import loss_curves_png
from llmlab.report.sections import build_sections

TITLE = "llmlab run report"

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
pre { background: #f6f8fa; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
img { max-width: 100%; }
"""


def md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def fence(text: str) -> str:
    """A Markdown code fence longer than any run of backticks inside `text`."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    return "`" * max(3, longest + 1)


def to_markdown(sections: list, generated: str) -> str:
    out = [f"# {TITLE}", "", f"Generated {generated} by `llmlab report`.", ""]
    for title, blocks in sections:
        out += [f"## {title}", ""]
        for block in blocks:
            kind = block[0]
            if kind == "p":
                out += [block[1], ""]
            elif kind == "h3":
                out += [f"### {block[1]}", ""]
            elif kind == "table":
                headers, rows = block[1], block[2]
                out.append("| " + " | ".join(md_cell(h) for h in headers) + " |")
                out.append("|" + "---|" * len(headers))
                out += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
                out.append("")
            elif kind == "code":
                f = fence(block[1])
                out += [f, block[1].rstrip("\n"), f, ""]
            elif kind == "details":
                f = fence(block[2])
                out += [f"<details><summary>{html.escape(block[1])}</summary>", "", f + "yaml", block[2].rstrip("\n"),
                        f, "", "</details>", ""]
            elif kind == "image":
                out += [f"![{block[2]}]({block[1]})", ""]
    return "\n".join(out)


def to_html(sections: list, generated: str, images: dict[str, bytes]) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{TITLE}</title>",
           f"<style>{STYLE}</style></head><body>", f"<h1>{TITLE}</h1>",
           f"<p>Generated {e(generated)} by <code>llmlab report</code>.</p>"]
    for title, blocks in sections:
        out.append(f"<h2>{e(title)}</h2>")
        for block in blocks:
            kind = block[0]
            if kind == "p":
                out.append(f"<p>{e(block[1])}</p>")
            elif kind == "h3":
                out.append(f"<h3>{e(block[1])}</h3>")
            elif kind == "table":
                head = "".join(f"<th>{e(h)}</th>" for h in block[1])
                body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in block[2])
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif kind == "code":
                out.append(f"<pre>{e(block[1])}</pre>")
            elif kind == "details":
                out.append(f"<details><summary>{e(block[1])}</summary><pre>{e(block[2])}</pre></details>")
            elif kind == "image":
                data = base64.b64encode(images[block[1]]).decode("ascii")
                out.append(f'<img alt="{e(block[2])}" src="data:image/png;base64,{data}">')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(run_dir: Path) -> tuple[Path, Path]:
    """Collect the run's facts and write report.md, report.html and loss_curves.png; returns (md, html) paths."""
    facts = collect(Path(run_dir))
    out = RunDir(run_dir).report
    png = loss_curves_png(facts["stages"])
    images = {name: data for _, _, lab_images in facts["labs"] for name, data in lab_images.items()}
    if png is not None:
        atomic_write_bytes(out / "loss_curves.png", png)
        images["loss_curves.png"] = png
    sections = build_sections(facts, has_curves=png is not None)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    md_path, html_path = out / "report.md", out / "report.html"
    atomic_write_text(md_path, to_markdown(sections, generated))
    atomic_write_text(html_path, to_html(sections, generated, images))
    return md_path, html_path
