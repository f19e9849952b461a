"""Multi-digit addition and multiplication (level = digits of each operand), with scratchpads a small model can learn.

    llmlab tasks sample --task addition --level 3
    What is 479 + 385?
    9 + 5 = 14: write 4, carry 1
    7 + 8 + 1 = 16: write 6, carry 1
    4 + 3 + 1 = 8: write 8, carry 0
    #### 864

Multiplication splits the second operand into its non-zero digits' place values, multiplies by each, then adds the
partial products one at a time ("479 * 385 = 479 * 5 + 479 * 80 + 479 * 300", ...).
"""

from __future__ import annotations

import random
from abc import abstractmethod

from llmlab.tasks.base import Problem, Task


def operand(rng: random.Random, digits: int) -> int:
    """A random number of exactly `digits` digits (0-9 for one digit)."""
    return rng.randrange(10 ** (digits - 1) if digits > 1 else 0, 10**digits)


class TwoOperands(Task):
    """"What is a <symbol> b?" with both operands of `level` digits."""

    symbol: str

    @abstractmethod
    def apply(self, a: int, b: int) -> int:
        """The answer to a <symbol> b."""

    def draw(self, rng: random.Random, level: int) -> Problem:
        a, b = operand(rng, level), operand(rng, level)
        return Problem(self.name, level, f"What is {a} {self.symbol} {b}?", str(self.apply(a, b)), {"a": a, "b": b})


class Addition(TwoOperands):
    name, symbol = "addition", "+"
    levels = range(1, 41)
    about = "a + b, both with `level` digits; scratchpad: digit by digit from the right with carries"

    def apply(self, a: int, b: int) -> int:
        return a + b

    def worked(self, problem: Problem) -> list[str]:
        a, b = str(problem.data["a"]), str(problem.data["b"])
        width = max(len(a), len(b))
        a, b = a.zfill(width), b.zfill(width)
        lines, carry = [], 0
        for x, y in zip(reversed(a), reversed(b)):
            total = int(x) + int(y) + carry
            terms = f"{x} + {y}" + (f" + {carry}" if carry else "")
            carry = total // 10
            lines.append(f"{terms} = {total}: write {total % 10}, carry {carry}")
        if carry:
            lines.append(f"the last carry {carry} is the leading digit")
        return lines


class Multiplication(TwoOperands):
    name, symbol = "multiplication", "*"
    levels = range(1, 11)
    about = "a * b, both with `level` digits; scratchpad: one partial product per non-zero digit of b, then their sum"

    def apply(self, a: int, b: int) -> int:
        return a * b

    def worked(self, problem: Problem) -> list[str]:
        a, b = problem.data["a"], problem.data["b"]
        parts = [int(d) * 10**i for i, d in enumerate(reversed(str(b))) if d != "0"] or [0]
        lines = [f"{a} * {b} = " + " + ".join(f"{a} * {p}" for p in parts)] if len(parts) > 1 else []
        lines += [f"{a} * {p} = {a * p}" for p in parts]
        total = a * parts[0]
        for p in parts[1:]:
            lines.append(f"{total} + {a * p} = {total + a * p}")
            total += a * p
        return lines
