"""Checkable tasks: seeded generators with difficulty levels, disjoint splits, worked and direct answer formats,
and exact checkers; what the System 2 lab's strategies, the RL trainer and the evaluations score with.

    base.py           Problem, Task (problems, prompt, solution, check), splits, final-answer parsing
    arithmetic.py     addition and multiplication (level = digits)
    countdown.py      reach a target from given numbers with + - * / (level = how many numbers)
    word_problems.py  templated multi-step word problems, GSM8K-shaped (level = steps)

    from llmlab.tasks import get_task, TASKS
    task = get_task("countdown")
"""

from __future__ import annotations

from llmlab.errors import LlmlabError
from llmlab.tasks.arithmetic import Addition, Multiplication
from llmlab.tasks.base import Problem, Task
from llmlab.tasks.countdown import Countdown
from llmlab.tasks.word_problems import WordProblems

TASKS: dict[str, Task] = {t.name: t for t in (Addition(), Multiplication(), Countdown(), WordProblems())}


def get_task(name: str) -> Task:
    """The task called `name`; a clear error naming the known ones otherwise."""
    if name not in TASKS:
        raise LlmlabError(f"unknown task {name!r}; tasks are {', '.join(TASKS)}")
    return TASKS[name]


__all__ = ["TASKS", "Problem", "Task", "get_task"]
