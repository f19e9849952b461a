"""A task's problems as training and evaluation files: one JSONL per split whose lines are chat records (`messages`:
the question, then the solution) that `llmlab sft` reads as they are, plus the problem itself (task, level,
question, answer, data) that the checker and the labs read back.

    rows = task_rows(get_task("addition"), levels=[1, 2, 3], split="train", per_level=1000, seed=0, worked=True)
    paths = write_task_data(Path("runs/x/tasks/addition"), get_task("addition"), [1, 2, 3],
                            {"train": 1000, "val": 100, "test": 500})
    problems = read_problems(paths["test"])
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from llmlab.errors import LlmlabError
from llmlab.files import atomic_write_json, write_jsonl
from llmlab.tasks.base import SPLITS, Problem, Task


def task_rows(task: Task, levels: list[int], split: str, per_level: int, seed: int = 0,
              worked: bool = True) -> list[dict]:
    """per_level problems of each level from `split`, shuffled together, as chat records with the problem beside."""
    rows = []
    for level in levels:
        for problem in task.problems(level, split, per_level, seed):
            messages = [{"role": "user", "content": task.prompt(problem)},
                        {"role": "assistant", "content": task.solution(problem, worked)}]
            rows.append({"messages": messages, **problem.to_dict(), "format": "worked" if worked else "direct"})
    random.Random(f"{task.name}/{split}/{seed}").shuffle(rows)
    return rows


def write_task_data(out: Path, task: Task, levels: list[int], sizes: dict[str, int], seed: int = 0,
                    worked: bool = True) -> dict[str, Path]:
    """<out>/<split>.jsonl for each split in `sizes` (problems per level) and <out>/task.json (what was made)."""
    unknown = set(sizes) - set(SPLITS)
    if unknown:
        raise LlmlabError(f"unknown split(s) {', '.join(sorted(unknown))}; splits are {', '.join(SPLITS)}")
    for level in levels:
        task.check_level(level)
    out = Path(out)
    paths = {}
    for split, n in sizes.items():
        paths[split] = out / f"{split}.jsonl"
        write_jsonl(paths[split], task_rows(task, levels, split, n, seed, worked))
    atomic_write_json(out / "task.json", {"task": task.name, "levels": levels, "per_level": sizes, "seed": seed,
                                          "format": "worked" if worked else "direct"})
    return paths


def read_problems(path: Path) -> list[Problem]:
    """The problems of a file `write_task_data` wrote (or any JSONL of Problem fields); errors name the line."""
    problems = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                problems.append(Problem.from_dict(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise LlmlabError(f"{path}:{number}: not a task problem ({type(e).__name__}: {e})") from None
    return problems
