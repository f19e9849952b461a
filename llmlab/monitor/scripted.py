"""A scripted user and a scripted labeler, to run the flywheel without people (docs/flywheel.md, tests):

    summary = scripted_session(store, "chat_dpo", Path("runs/x/chat_dpo"), run_dir=Path("runs/x"), questions=200)

The user asks the served version two-digit sums and differences ("What is 47 + 38?", the default data's wording)
that appear nowhere in the run's fine-tuning data (train or val), so they never overlap the regular evals; every
exchange is stored as the server stores it. An answer whose last number is not the result (the check of the
arithmetic eval) is flagged "wrong arithmetic"; the labeler then works through the review queue and writes the
ideal response in the default data's format ("47 + 38 = 85."), for up to `max_flags` flagged answers.

    tally = scripted_duel(store, {"chat_dpo": Path("runs/x/chat_dpo"), "chat_v2": Path("runs/x/chat_v2")},
                          run_dir=Path("runs/x"), questions=100)

A scripted arena: both versions answer the same new sums (none the store has seen) and a blind comparison is
stored for each, won by the right answer.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from llmlab.data.default_data import default_data_files
from llmlab.engine.conversation import greedy_replies
from llmlab.model.folder import load_model_folder
from llmlab.monitor.store import Store

QUESTION = re.compile(r"^What is (\d+) ([+-]) (\d+)\?$")


def fresh_sums(run_dir: Path, n: int, seed: int = 0, avoid: set[str] = frozenset()) -> list[tuple[str, str]]:
    """n (question, ideal answer) pairs of 2-digit sums/differences absent from the run's fine-tuning data (and
    from `avoid`)."""
    files = default_data_files(run_dir)
    used = set(avoid)
    for split in ("sft_train", "sft_val"):
        for line in Path(files[split]).read_text(encoding="utf-8").splitlines():
            used.update(m["content"] for m in json.loads(line)["messages"] if m["role"] == "user")
    rng, out, seen = random.Random(f"{seed}-scripted-sums"), [], set()
    while len(out) < n:
        a, b, op = rng.randint(10, 99), rng.randint(10, 99), rng.choice("+-")
        if op == "-" and b > a:
            a, b = b, a  # the default data's differences are never negative
        question = f"What is {a} {op} {b}?"
        if question not in used and question not in seen:
            seen.add(question)
            out.append((question, f"{a} {op} {b} = {a + b if op == '+' else a - b}."))
    return out


def is_right(question: str, answer: str) -> bool:
    a, op, b = QUESTION.match(question).groups()
    numbers = re.findall(r"-?\d+", answer)
    return bool(numbers) and int(numbers[-1]) == (int(a) + int(b) if op == "+" else int(a) - int(b))


def scripted_session(store: Store, model_name: str, model_dir: Path, *, run_dir: Path, questions: int = 200,
                     max_flags: int = 20, max_tokens: int = 32, seed: int = 0) -> dict:
    """Ask, flag the wrong answers, correct up to max_flags of them; returns {"asked", "wrong", "corrected"}."""
    model, tok, _ = load_model_folder(model_dir)
    pairs = fresh_sums(run_dir, questions, seed)
    prompts = [[{"role": "user", "content": q}] for q, _ in pairs]
    ideal = dict(pairs)
    wrong = 0
    for (question, _), prompt, answer in zip(pairs, prompts, greedy_replies(model, tok, prompts, max_tokens)):
        _, message = store.start_exchange(model=model_name, messages=prompt, params={"temperature": 0.0,
                                                                                      "max_tokens": max_tokens})
        store.finish_exchange(message, answer, "stop", {})
        if not is_right(question, answer):
            store.add_feedback(message, "flag", "wrong arithmetic")
            wrong += 1
    corrected = 0
    for item in store.review_queue(limit=max_flags):
        question = item["prompt"][-1]["content"]
        if item["flagged"] and question in ideal:
            store.add_label(item["message_id"], ideal[question], labeler="scripted")
            corrected += 1
    return {"asked": len(pairs), "wrong": wrong, "corrected": corrected}


def scripted_duel(store: Store, versions: dict[str, Path], *, run_dir: Path, questions: int = 100,
                  max_tokens: int = 32, seed: int = 1) -> dict:
    """Blind A/B comparisons between two versions on fresh sums, judged by the arithmetic check: the right answer
    wins, two right or two wrong answers tie. Sides are shuffled per question. Returns {name: wins, "tie": n}."""
    (name_a, dir_a), (name_b, dir_b) = versions.items()
    pairs = fresh_sums(run_dir, questions, seed, avoid=store.asked())  # never a prompt a version was corrected on
    prompts = [[{"role": "user", "content": q}] for q, _ in pairs]
    answers = {}
    for name, folder in ((name_a, dir_a), (name_b, dir_b)):
        model, tok, _ = load_model_folder(folder)
        answers[name] = greedy_replies(model, tok, prompts, max_tokens)
    rng, tally = random.Random(f"{seed}-duel"), {name_a: 0, name_b: 0, "tie": 0}
    for i, ((question, _), prompt) in enumerate(zip(pairs, prompts)):
        first, second = rng.sample([name_a, name_b], 2)
        ids, conversation = [], None
        for name in (first, second):
            conversation, message = store.start_exchange(model=name, messages=prompt, params={"temperature": 0.0},
                                                          conversation_id=conversation)
            store.finish_exchange(message, answers[name][i], "stop", {})
            ids.append(message)
        right = [is_right(question, answers[name][i]) for name in (first, second)]
        winner = "tie" if right[0] == right[1] else "a" if right[0] else "b"
        store.add_comparison(ids[0], ids[1], winner, labeler="scripted")
        tally[{"a": first, "b": second, "tie": "tie"}[winner]] += 1
    return tally
