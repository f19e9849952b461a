"""The System 2 lab (`llmlab think`, issue 16): accuracy against inference FLOPs for each test-time strategy.

    config.py   ThinkConfig (what is measured) and its presets (default, quick)
    run.py      the experiment: the verifier trained on the reasoner's own attempts, paired attempts at held-out
                problems, the strategies' curves with 95% intervals, coverage and its power-law fit (resumable)
    curves.py   strategies' accuracy at k samples from pools of attempts, coverage and its power-law fit
    report.py   accuracy.png, coverage.png and the report card's section

Not built yet (issue 16 stays open): the exchange-rate experiment over several training budgets, step search in the
curves, the server's effort control, and the SmolLM2 GSM8K run.
"""
