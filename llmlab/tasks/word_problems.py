"""Templated multi-step arithmetic word problems in English, in GSM8K's shape (level = steps, "#### N" answers).

    llmlab tasks sample --task word_problems --level 3
    Ava has 12 shells. She buys 3 packs of 4 shells. She gives 5 shells to a friend. She splits her shells equally
    into 3 boxes and keeps one box. How many shells does Ava have now?
    Ava starts with 12 shells.
    3 packs of 4 shells are 3 * 4 = <<3*4=12>>12 shells, so she has 12 + 12 = <<12+12=24>>24 shells.
    ...
    #### 19

Each step is one operation on the running count, described in a sentence; the worked solution computes one step per
line with GSM8K's calculator annotations (<<a*b=c>>), the operands of + and * in either order (seeded by the
question's text, so each problem has one reference solution and the training set shows both routes). Numbers are kept
small and every result a positive integer.
"""

from __future__ import annotations

import hashlib
import random

from llmlab.tasks.base import Problem, Task

PEOPLE = [("Ava", "she", "her"), ("Ben", "he", "his"), ("Chloe", "she", "her"), ("Dev", "he", "his"),
          ("Elena", "she", "her"), ("Farid", "he", "his"), ("Grace", "she", "her"), ("Hugo", "he", "his"),
          ("Ines", "she", "her"), ("Jonas", "he", "his"), ("Kemi", "she", "her"), ("Liam", "he", "his")]
ITEMS = ["apples", "marbles", "stickers", "coins", "books", "pencils", "cards", "shells", "stamps", "beads"]
MAX_COUNT = 2000  # a step that would pass this is not drawn
TIMES = {2: "doubles", 3: "triples"}


def step(rng: random.Random, count: int, item: str, he: str, his: str) -> tuple[int, str, tuple] | None:
    """One random operation on the running count: (new count, its sentence, the operation to work out), or None if it
    does not fit the count (nothing to give away, not divisible, too large)."""
    kind = rng.choice(["buys", "packs", "gives", "times", "shares"])
    if kind == "buys":
        k = rng.randint(1, 20)
        return count + k, f"{he.capitalize()} gets {k} more {item}.", ("buys", count, k)
    if kind == "packs":
        n, m = rng.randint(2, 9), rng.randint(2, 12)
        return count + n * m, f"{he.capitalize()} buys {n} packs of {m} {item}.", ("packs", count, n, m)
    if kind == "gives" and count > 1:
        k = rng.randint(1, min(count - 1, 20))
        return count - k, f"{he.capitalize()} gives {k} {item} to a friend.", ("gives", count, k)
    if kind == "times" and count * 3 <= MAX_COUNT:
        k = rng.choice([2, 3])
        return count * k, f"Then {his} collection {TIMES[k]}.", ("times", count, k)
    if kind == "shares":
        ways = [k for k in range(2, 6) if count % k == 0 and count // k >= 2]
        if ways:
            k = rng.choice(ways)
            return count // k, f"{he.capitalize()} splits {his} {item} equally into {k} boxes and keeps one box.", \
                ("shares", count, k)
    return None


def calc(a: int, op: str, b: int, value: int) -> str:
    """An operation written out with GSM8K's calculator annotation: "a + b = <<a+b=c>>c"."""
    return f"{a} {op} {b} = <<{a}{op}{b}={value}>>{value}"


def worked_line(rng: random.Random, operation: tuple, item: str, he: str) -> str:
    """The worked line of one operation. The operands of + and * come in either order (a coin per operation): solutions
    that take different routes to one answer are what self-consistency votes over (Wang et al. 2023); with one fixed
    route a sampled attempt repeats greedy's slips instead of making independent ones."""
    def either(a: int, op: str, b: int, value: int) -> str:
        return calc(*((a, op, b) if rng.random() < 0.5 else (b, op, a)), value)

    kind, count, *args = operation
    if kind == "buys":
        k, = args
        return f"After getting {k} more: {either(count, '+', k, count + k)} {item}."
    if kind == "packs":
        n, m = args
        return (f"{n} packs of {m} {item} are {either(n, '*', m, n * m)} {item}, so {he} has "
                f"{either(count, '+', n * m, count + n * m)} {item}.")
    if kind == "gives":
        k, = args
        return f"After giving {k} away: {calc(count, '-', k, count - k)} {item}."
    if kind == "times":
        k, = args
        return f"It {TIMES[k]}: {either(count, '*', k, count * k)} {item}."
    k, = args
    return f"One box of {k} holds {calc(count, '/', k, count // k)} {item}."


class WordProblems(Task):
    name = "word_problems"
    levels = range(1, 9)
    about = "a story of `level` arithmetic steps on one count; GSM8K-style worked solution with <<a+b=c>> annotations"

    def draw(self, rng: random.Random, level: int) -> Problem:
        name, he, his = rng.choice(PEOPLE)
        item, start = rng.choice(ITEMS), rng.randint(2, 50)
        count, sentences, operations = start, [], []
        while len(sentences) < level:
            made = step(rng, count, item, he, his)
            if made is not None and made[0] <= MAX_COUNT:
                count = made[0]
                sentences.append(made[1])
                operations.append(made[2])
        question = f"{name} has {start} {item}. {' '.join(sentences)} How many {item} does {name} have now?"
        # the operands' order comes from the question's own text, so drawing it leaves the question stream unchanged
        order = random.Random(int.from_bytes(hashlib.sha256(question.encode()).digest()[:8], "big"))
        lines = [f"{name} starts with {start} {item}."] + [worked_line(order, op, item, he) for op in operations]
        return Problem(self.name, level, question, str(count), {"lines": lines})

    def worked(self, problem: Problem) -> list[str]:
        return list(problem.data["lines"])
