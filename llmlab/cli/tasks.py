"""`llmlab tasks`: the checkable tasks (llmlab/tasks/): list them, look at problems, write training files.

    llmlab tasks list
    llmlab tasks sample --task countdown --level 3 --n 3
    llmlab tasks make --task addition --levels '[1,2,3]' --out runs/x/tasks/addition --train 2000 --test 500
    llmlab sft --run_dir runs/x --sft.train_files '[runs/x/tasks/addition/train.jsonl]'   # the files are chat data
"""

from __future__ import annotations

from pathlib import Path


def list_tasks() -> None:
    """Every task: its levels and what a problem is."""
    from llmlab.tasks import TASKS

    for name, task in TASKS.items():
        print(f"{name:<15} levels {task.levels.start}-{task.levels.stop - 1:<4} {task.about}")


def sample(*, task: str, level: int = 1, split: str = "test", n: int = 3, seed: int = 0, worked: bool = True) -> None:
    """Print problems with their reference solutions.

    Args:
        task: the task's name (`llmlab tasks list`).
        level: the difficulty level.
        split: train, val or test (disjoint by construction).
        n: how many problems.
        seed: which problems (the same seed gives the same ones).
        worked: show the worked solution (false: the direct answer only).
    """
    from llmlab.tasks import get_task

    t = get_task(task)
    for problem in t.problems(level, split, n, seed):
        print(f"{t.prompt(problem)}\n{t.solution(problem, worked)}\n")


def make(*, task: str, out: Path, levels: list[int] = [1, 2, 3], train: int = 1000, val: int = 100, test: int = 500,
         seed: int = 0, worked: bool = True) -> None:
    """Write <out>/train.jsonl, val.jsonl, test.jsonl (chat records with the problem beside) and task.json.

    Args:
        task: the task's name (`llmlab tasks list`).
        out: the folder to write.
        levels: the difficulty levels to include.
        train: training problems per level (0: no file).
        val: validation problems per level (0: no file).
        test: test problems per level (0: no file).
        seed: which problems (the same seed gives the same files).
        worked: worked solutions (false: direct answers, "#### N" alone).
    """
    from llmlab.tasks import get_task
    from llmlab.tasks.datasets import write_task_data

    sizes = {split: n for split, n in (("train", train), ("val", val), ("test", test)) if n}
    paths = write_task_data(out, get_task(task), list(levels), sizes, seed, worked)
    for split, path in paths.items():
        print(f"{split:<5} {sizes[split] * len(levels):>7,} problems -> {path}")
