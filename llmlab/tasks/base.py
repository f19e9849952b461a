"""What every checkable task is: a seeded generator with difficulty levels, disjoint splits, a worked-solution and a
direct-answer format, and an exact checker.

    from llmlab.tasks import get_task
    task = get_task("addition")
    problems = task.problems(level=3, split="test", n=500, seed=0)   # the same 500 for the same arguments
    p = problems[0]                           # Problem(task, level, question, answer, data)
    task.prompt(p)                            # the question as the model is asked it
    task.solution(p)                          # worked: scratchpad lines, then "#### <answer>"
    task.solution(p, worked=False)            # direct: "#### <answer>"
    task.check(p, "... #### 864")             # True only for the right final answer; malformed text is wrong

Splits are disjoint by construction: a problem's split is a fixed function of its question's text (a stable hash
into 100 buckets: test 0-9, val 10-19, train 20-99), so no seed, level or count can put one question in two
splits. A generator draws random problems from its seeded `random.Random` and keeps those that hash into the
asked split, distinct ones only.
"""

from __future__ import annotations

import hashlib
import random
import re
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field

from llmlab.errors import LlmlabError

SPLITS = {"test": range(0, 10), "val": range(10, 20), "train": range(20, 100)}  # buckets of the question's hash
FINAL = "####"  # the final-answer marker of GSM8K solutions; every task's answer follows it
INTEGER = re.compile(r"[+-]?\d+")
DRAWS_PER_PROBLEM = 200  # give up when this many draws per asked problem found too few new ones (a small level)


@dataclass(frozen=True)
class Problem:
    """One instance: its question, its reference answer (text) and the task's own data (operands, numbers)."""

    task: str
    level: int
    question: str
    answer: str
    data: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> Problem:
        return cls(row["task"], int(row["level"]), row["question"], str(row["answer"]), dict(row.get("data", {})))


def split_of(task: str, question: str) -> str:
    """The split a question belongs to, fixed by its text."""
    bucket = int.from_bytes(hashlib.sha256(f"{task}\n{question}".encode()).digest()[:4], "big") % 100
    return next(name for name, buckets in SPLITS.items() if bucket in buckets)


def final_answer(text: str) -> str | None:
    """The text after the last "####" up to the end of its line, stripped; None when there is no "####"."""
    at = text.rfind(FINAL)
    if at < 0:
        return None
    return text[at + len(FINAL):].split("\n", 1)[0].strip()


def as_integer(text: str) -> int | None:
    """An integer answer as people write it ("1,234", "+5", "12."), else None."""
    text = text.replace(",", "").rstrip(".").strip()
    return int(text) if INTEGER.fullmatch(text) else None


class Task(ABC):
    """A task family. Subclasses set name, levels, about, and write draw (a random problem of a level) and
    worked (the scratchpad lines of a problem's solution); answers are integers unless `same` says otherwise."""

    name: str
    levels: range
    about: str

    @abstractmethod
    def draw(self, rng: random.Random, level: int) -> Problem:
        """One random problem of `level`."""

    @abstractmethod
    def worked(self, problem: Problem) -> list[str]:
        """The worked solution's lines before the final answer."""

    def check_level(self, level: int) -> None:
        if level not in self.levels:
            raise LlmlabError(f"task {self.name}: level {level} does not exist; levels are "
                              f"{self.levels.start}..{self.levels.stop - 1}")

    def problems(self, level: int, split: str, n: int, seed: int = 0) -> list[Problem]:
        """n distinct problems of `level` from `split`, the same ones for the same arguments."""
        self.check_level(level)
        if split not in SPLITS:
            raise LlmlabError(f"split {split!r}: unknown; splits are {', '.join(SPLITS)}")
        rng = random.Random(f"{self.name}/{level}/{split}/{seed}")
        found: dict[str, Problem] = {}
        for _ in range(DRAWS_PER_PROBLEM * max(n, 1)):
            if len(found) >= n:
                break
            problem = self.draw(rng, level)
            if problem.question not in found and split_of(self.name, problem.question) == split:
                found[problem.question] = problem
        if len(found) < n:
            raise LlmlabError(f"task {self.name}, level {level}: only {len(found)} distinct {split} problems found, "
                              f"{n} asked; ask fewer or a higher level")
        return list(found.values())

    def prompt(self, problem: Problem) -> str:
        """The question as the model is asked it."""
        return problem.question

    def solution(self, problem: Problem, worked: bool = True) -> str:
        """The reference solution: the worked lines then "#### answer", or the final line alone."""
        return "\n".join([*(self.worked(problem) if worked else []), f"{FINAL} {problem.answer}"])

    def same(self, problem: Problem, answer: str) -> bool:
        """Whether a final answer (the text after "####") is right."""
        value = as_integer(answer)
        return value is not None and value == int(problem.answer)

    def check(self, problem: Problem, text: str) -> bool:
        """The exact checker: the text's final answer (after its last "####") is right."""
        answer = final_answer(text)
        return answer is not None and self.same(problem, answer)
