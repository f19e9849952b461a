"""Countdown: reach a target from given numbers with + - * / (level = how many numbers), checked by parsing.

    llmlab tasks sample --task countdown --level 3
    Using the numbers 25, 7, 4, each at most once, and + - * /, make 72.
    25 - 7 = 18
    18 * 4 = 72
    #### (25 - 7) * 4

The generator combines all the numbers in a random order with random operations whose intermediate results stay
positive integers (exact division only), so every problem has a solution using every number. The checker accepts
any expression that uses each given number at most once and equals the target; it parses the expression itself
(Python's `ast`, integers and + - * / and parentheses only, exact fractions), never `eval`.
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from fractions import Fraction

from llmlab.tasks.base import Problem, Task

NUMBERS = range(1, 51)  # the numbers a problem gives
TARGETS = range(1, 1001)  # the targets it may ask for
MAX_ANSWER = 200  # characters: longer answers are not parsed
OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def combine(rng: random.Random, a: tuple[int, str], b: tuple[int, str]) -> tuple[int, str, str] | None:
    """A random operation on two (value, expression) pairs: (value, expression, step line), or None if it would leave
    the positive integers or be trivial (x * 1, x / 1)."""
    (x, ex), (y, ey) = (a, b) if a[0] >= b[0] else (b, a)
    op = rng.choice("+-*/")
    if op == "-" and x == y or op == "/" and (y == 1 or x % y) or op == "*" and 1 in (x, y):
        return None
    value = {"+": x + y, "-": x - y, "*": x * y, "/": x // y}[op]
    wrap = [e if e.isdigit() else f"({e})" for e in (ex, ey)]
    return value, f"{wrap[0]} {op} {wrap[1]}", f"{x} {op} {y} = {value}"


def evaluate(node: ast.AST, used: list[int]) -> Fraction:
    """The exact value of a parsed expression of integers and + - * /; ValueError for anything else."""
    if isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 0:
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in OPS:
        left, right = evaluate(node.left, used), evaluate(node.right, used)
        if isinstance(node.op, ast.Div):
            if right == 0:
                raise ValueError("division by zero")
            return left / right
        return left + right if isinstance(node.op, ast.Add) else left - right if isinstance(node.op, ast.Sub) \
            else left * right
    raise ValueError(f"not allowed in an answer: {type(node).__name__}")


class Countdown(Task):
    name = "countdown"
    levels = range(2, 7)
    about = "reach the target from `level` numbers (1-50) with + - * /, each number at most once"

    def draw(self, rng: random.Random, level: int) -> Problem:
        while True:
            numbers = [rng.choice(NUMBERS) for _ in range(level)]
            pool, steps = [(n, str(n)) for n in numbers], []
            while len(pool) > 1:
                a, b = pool.pop(rng.randrange(len(pool))), pool.pop(rng.randrange(len(pool)))
                made = combine(rng, a, b)
                if made is None:
                    break
                pool.append(made[:2])
                steps.append(made[2])
            if len(pool) == 1 and pool[0][0] in TARGETS and pool[0][0] not in numbers:
                target, expression = pool[0]
                question = (f"Using the numbers {', '.join(map(str, numbers))}, each at most once, and + - * /, "
                            f"make {target}.")
                return Problem(self.name, level, question, expression,
                               {"numbers": numbers, "target": target, "steps": steps})

    def worked(self, problem: Problem) -> list[str]:
        return list(problem.data["steps"])

    def same(self, problem: Problem, answer: str) -> bool:
        """Right when the expression (optionally followed by "= target") equals the target and uses each given number
        at most once."""
        expression = answer.split("=", 1)[0].strip()
        if not expression or len(expression) > MAX_ANSWER:
            return False
        used: list[int] = []
        try:
            value = evaluate(ast.parse(expression, mode="eval").body, used)
        except (SyntaxError, ValueError, RecursionError):
            return False
        return value == problem.data["target"] and not Counter(used) - Counter(problem.data["numbers"])
