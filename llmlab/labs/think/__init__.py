"""The System 2 lab (`llmlab think`, issue 16): accuracy against inference FLOPs for each test-time strategy.

    curves.py   strategies' accuracy at k samples from pools of attempts, coverage and its power-law fit

Built so far: the curves' arithmetic. The experiment (config, run, report section) and the command come with the
reasoner it measures.
"""
