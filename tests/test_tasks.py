"""The checkable tasks: exact checkers on hand-written right, wrong and malformed answers, deterministic generators
with disjoint splits, reference solutions that check, and the training files they write."""

from __future__ import annotations

import json

import pytest

from llmlab.errors import LlmlabError
from llmlab.tasks import TASKS, Problem, get_task
from llmlab.tasks.base import final_answer, split_of
from llmlab.tasks.datasets import read_problems, write_task_data
from llmlab.tokenizer.conversations import load_sft_file


def problem(task: str, question: str, answer: str, **data) -> Problem:
    return Problem(task, 1, question, answer, data)


def test_final_answer_is_what_follows_the_last_marker():
    assert final_answer("7 + 8 = 15\n#### 15") == "15"
    assert final_answer("#### 3\nmore text\n#### 16\nsomething after") == "16"
    assert final_answer("the answer is 15") is None and final_answer("####") == ""


@pytest.mark.parametrize("text, right", [
    ("#### 864", True), ("9 + 5 = 14\n#### 864", True), ("#### 864.", True), ("####864", True), ("#### +864", True),
    ("#### 0864", True), ("#### 863", False), ("864", False), ("#### 864 apples", False), ("#### 8 64", False),
    ("#### 864\n#### 865", False), ("", False), ("#### ", False), ("#### 864e0", False), ("#### -864", False)])
def test_integer_answers(text, right):
    assert get_task("addition").check(problem("addition", "What is 479 + 385?", "864", a=479, b=385), text) is right


def test_thousands_separators_are_read():
    p = problem("multiplication", "What is 479 * 385?", "184415", a=479, b=385)
    assert get_task("multiplication").check(p, "#### 184,415") and not get_task("multiplication").check(p, "#### 18,4415.5")


@pytest.mark.parametrize("answer, right", [
    ("(25 - 7) * 4", True), ("4 * (25 - 7)", True), ("(25 - 7) * 4 = 72", True), ("72", False),
    ("25 * 4 - 7 * 4", False),  # 4 used twice
    ("(25 - 7) * 4 + 0", False),  # 0 is not given
    ("(25 - 7) * 3", False), ("(25 - 7) * 4)", False), ("__import__('os')", False), ("25 ** 2", False),
    ("(25 - 7) / 0", False), ("-(7 - 25) * 4", False), ("(25 - 7) * 4.0", False), ("", False), ("x" * 300, False),
    ("((7 * 4) + 25) + 19", False)])  # 19 is not given
def test_countdown_checker_parses_without_eval(answer, right):
    p = problem("countdown", "Using the numbers 25, 7, 4 ...", "(25 - 7) * 4", numbers=[25, 7, 4], target=72)
    assert get_task("countdown").check(p, f"25 - 7 = 18\n18 * 4 = 72\n#### {answer}") is right


def test_countdown_division_is_exact():
    p = problem("countdown", "q", "(7 - 1) / 4", numbers=[7, 1, 4, 2], target=3)
    assert get_task("countdown").check(p, "#### (7 - 1) / 2") and not get_task("countdown").check(p, "#### 7 / 2")
    assert get_task("countdown").check(problem("countdown", "q", "", numbers=[3, 2, 4], target=6), "#### 3 / 2 * 4")


@pytest.mark.parametrize("name", TASKS)
def test_generators_are_deterministic_split_disjoint_and_their_solutions_check(name):
    task = get_task(name)
    for level in (task.levels.start + 1, task.levels.start + 3):
        test = task.problems(level, "test", 20, seed=0)
        assert test == task.problems(level, "test", 20, seed=0) and test != task.problems(level, "test", 20, seed=1)
        train = task.problems(level, "train", 60, seed=0)
        assert not {p.question for p in test} & {p.question for p in train}
        assert all(split_of(name, p.question) == "test" for p in test)
        assert len({p.question for p in train}) == 60 and all(p.level == level for p in train)
        for p in test + train:
            assert task.check(p, task.solution(p)) and task.check(p, task.solution(p, worked=False))
            assert not task.check(p, task.prompt(p)) and not task.check(p, "#### 1000001")


def test_worked_solutions_show_their_steps():
    add = get_task("addition")
    p = problem("addition", "What is 479 + 385?", "864", a=479, b=385)
    assert add.solution(p).splitlines() == ["9 + 5 = 14: write 4, carry 1", "7 + 8 + 1 = 16: write 6, carry 1",
                                            "4 + 3 + 1 = 8: write 8, carry 0", "#### 864"]
    assert add.solution(problem("addition", "", "1098", a=999, b=99))  # different lengths and a last carry
    assert add.worked(problem("addition", "", "1098", a=999, b=99))[-1] == "the last carry 1 is the leading digit"
    mul = get_task("multiplication").worked(problem("multiplication", "", "184415", a=479, b=385))
    assert mul[0] == "479 * 385 = 479 * 5 + 479 * 80 + 479 * 300" and mul[-1] == "40715 + 143700 = 184415"
    for p in get_task("word_problems").problems(4, "test", 10):
        lines = get_task("word_problems").worked(p)
        assert len(lines) == 5 and lines[-1].endswith(f">>{p.answer} {p.question.split()[3].rstrip('.')}.")


def test_word_problem_solutions_take_either_operand_order_and_stay_exact():
    import re

    task = get_task("word_problems")
    orders = set()
    for p in task.problems(3, "train", 200, seed=1):
        calcs = re.findall(r"(\d+) ([-+*/]) (\d+) = <<(\d+)([-+*/])(\d+)=(\d+)>>(\d+)", task.solution(p))
        assert calcs and task.check(p, task.solution(p))
        for a, op, b, a2, op2, b2, c, c2 in calcs:
            assert (a, op, b, c) == (a2, op2, b2, c2)
            assert int(c) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b),
                              "/": int(a) // int(b)}[op]
            if op in "+*" and a != b:
                orders.add((op, int(a) < int(b)))
    assert orders == {("+", True), ("+", False), ("*", True), ("*", False)}
    again = task.problems(3, "train", 200, seed=1)
    assert [task.solution(p) for p in again[:20]] == [task.solution(p) for p in task.problems(3, "train", 20, seed=1)]


def test_bad_requests_are_named():
    with pytest.raises(LlmlabError, match="unknown task 'sudoku'; tasks are addition"):
        get_task("sudoku")
    with pytest.raises(LlmlabError, match="level 9 does not exist; levels are 2..6"):
        get_task("countdown").problems(9, "test", 1)
    with pytest.raises(LlmlabError, match="split 'dev'"):
        get_task("addition").problems(2, "dev", 1)
    with pytest.raises(LlmlabError, match="only 12 distinct test problems"):
        get_task("addition").problems(1, "test", 50)


def test_task_files_are_chat_data_and_read_back(tmp_path, tiny_tokenizer):
    from llmlab.tokenizer.bpe import Tokenizer

    task = get_task("word_problems")
    paths = write_task_data(tmp_path / "wp", task, [1, 3], {"train": 30, "test": 10}, seed=2)
    records, _ = load_sft_file(paths["train"], Tokenizer.load(tiny_tokenizer))
    assert len(records) == 60 and all(r["messages"][1]["content"].split("\n")[-1].startswith("#### ") for r in records)
    test = read_problems(paths["test"])
    assert len(test) == 20 and {p.level for p in test} == {1, 3}
    assert {p.question for p in test} == {p.question for lv in (1, 3) for p in task.problems(lv, "test", 10, seed=2)}
    assert json.loads((tmp_path / "wp" / "task.json").read_text())["levels"] == [1, 3]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(paths["test"].read_text().splitlines()[0] + "\n{\"task\": \"x\"}\n")
    with pytest.raises(LlmlabError, match=r"bad.jsonl:2: not a task problem"):
        read_problems(bad)
