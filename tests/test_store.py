"""The serving database: exchanges as a tree, feedback, the review queue, exports that the fine-tuning loaders
accept, migrations, and nothing lost under parallel writers (threads and processes at once)."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading

import pytest

from llmlab.errors import LlmlabError
from llmlab.monitor import store as store_module
from llmlab.monitor.store import Store
from llmlab.tokenizer.conversations import load_preference_file, load_sft_file

USER = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is red?"}]


def _exchange(store: Store, answer: str, model: str = "m1", messages=USER, conversation_id=None) -> tuple[int, int]:
    conversation, message = store.start_exchange(model=model, messages=messages, params={"temperature": 0.7},
                                                 conversation_id=conversation_id)
    store.finish_exchange(message, answer, "stop", {"completion_tokens": 3})
    return conversation, message


def test_exchanges_form_a_tree_and_wal(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    assert store._db().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conversation, first = _exchange(store, "The apple.")
    # regenerate: same prompt, same conversation -> a sibling answer sharing the stored prompt messages
    same, second = _exchange(store, "The sky.", conversation_id=conversation)
    assert same == conversation and store.prompt(first) == store.prompt(second) == USER
    assert store.counts()["messages"] == 4  # system, user, two answers
    # continue: the history includes the first answer
    follow = USER + [{"role": "assistant", "content": "The apple."}, {"role": "user", "content": "And green?"}]
    _, third = _exchange(store, "The grass.", messages=follow, conversation_id=conversation)
    assert store.prompt(third) == follow and store.counts()["messages"] == 6
    # an unknown conversation id starts a new conversation
    other, _ = _exchange(store, "x", conversation_id=999)
    assert other != conversation
    # a partial answer (client went away) is kept with its reason
    _, cut = store.start_exchange(model="m1", messages=USER, params={})
    store.finish_exchange(cut, "The ap", "disconnect", {"completion_tokens": 2})
    assert store.message(cut)["content"] == "The ap" and store.message(cut)["finish_reason"] == "disconnect"


def test_feedback_queue_labels_and_exports(tmp_path, tiny_tokenizer):
    from llmlab.tokenizer.bpe import Tokenizer

    store = Store(tmp_path / "s.sqlite")
    store.register_model("m1", "runs/x/m1", {"stage": "dpo"})
    store.register_model("m1", "runs/x/m1b")  # re-registering updates
    assert [m["path"] for m in store.models()] == ["runs/x/m1b"]
    answers = [_exchange(store, f"Answer {i}.", messages=[{"role": "user", "content": f"Question {i}?"}])[1]
               for i in range(6)]
    with pytest.raises(LlmlabError, match="reason"):
        store.add_feedback(answers[3], "flag", "  ")
    with pytest.raises(LlmlabError, match="not an answer"):
        store.add_feedback(answers[3] - 1, "up")  # the user message
    store.add_feedback(answers[4], "flag", "wrong fact")
    store.add_feedback(answers[1], "flag", "rambles")
    store.add_feedback(answers[0], "up")
    queue = store.review_queue(limit=10)
    assert [q["message_id"] for q in queue[:2]] == [answers[1], answers[4]] and queue[0]["flagged"]
    assert sorted(q["message_id"] for q in queue[2:]) == sorted(set(answers) - {answers[1], answers[4]})
    assert queue[1]["feedback"] == [{"kind": "flag", "reason": "wrong fact"}]

    store.add_label(answers[4], "The right answer.")
    store.add_label(answers[1], "First try.")
    store.add_label(answers[1], "Short answer.")  # the newest label wins
    # two candidates to the same prompt, made for a blind comparison
    prompt = [{"role": "user", "content": "Question 0?"}]
    conversation = store.message(answers[0])["conversation_id"]
    cands = []
    for model in ("m1", "m2"):
        _, m = store.start_exchange(model=model, messages=prompt, params={},
                                    conversation_id=conversation)
        store.finish_exchange(m, f"Candidate of {model}.", "stop", {})
        cands.append(m)
    with pytest.raises(LlmlabError, match="same prompt"):
        store.add_comparison(cands[0], answers[2], "a")
    store.add_comparison(cands[0], cands[1], "b")
    left = {q["message_id"] for q in store.review_queue(limit=10)}
    assert left == {answers[2], answers[3], answers[5]}  # labelled ones and the compared prompt left the queue

    tok = Tokenizer.load(tiny_tokenizer)
    assert store.export_sft(tmp_path / "sft.jsonl") == 2
    records, summary = load_sft_file(tmp_path / "sft.jsonl", tok)
    assert summary["kept"] == 2 and records[0]["messages"][-1] == {"role": "assistant", "content": "Short answer."}
    assert store.export_dpo(tmp_path / "dpo.jsonl") == 3
    pairs, _ = load_preference_file(tmp_path / "dpo.jsonl", tok)
    assert {(p["chosen"], p["rejected"]) for p in pairs} == {
        ("Short answer.", "Answer 1."), ("The right answer.", "Answer 4."), ("Candidate of m2.", "Candidate of m1.")}
    rows = store.comparison_rows()
    assert rows[0]["model_a"] == "m1" and rows[0]["model_b"] == "m2" and rows[0]["prompt"] == prompt


def test_text_completions_are_logged_apart_from_conversations(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])  # a file from before completions
    _exchange(Store(path), "kept")
    monkeypatch.undo()
    store = Store(path)
    done = store.start_completion(model="base", prompt="The river", params={"seed": 3}, api_key="k1")
    assert store.completion(done)["text"] == "" and store.completion(done)["finished"] is None  # stored first
    store.finish_completion(done, " flows north", "length", {"completion_tokens": 2})
    row = store.completion(done)
    assert (row["model"], row["prompt"], row["text"], row["finish_reason"], row["api_key"]) == \
        ("base", "The river", " flows north", "length", "k1")
    assert json.loads(row["params"]) == {"seed": 3} and json.loads(row["usage"]) == {"completion_tokens": 2}
    counts = store.counts()
    assert (counts["completions"], counts["messages"]) == (1, 3)  # the old exchange survived the upgrade
    assert store.review_queue() and all(item["answer"] != " flows north" for item in store.review_queue())
    with pytest.raises(LlmlabError, match="no completion 99"):
        store.finish_completion(99, "x", "stop", {})


def test_migrations_run_once_and_upgrade_old_files(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    store = Store(path)
    _exchange(store, "kept")
    store.close()
    assert Store(path).schema_version() == len(store_module.MIGRATIONS)
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS + ["ALTER TABLE labels ADD COLUMN note TEXT"])
    upgraded = Store(path)
    assert upgraded.schema_version() == len(store_module.MIGRATIONS)
    assert upgraded.counts()["messages"] == 3  # the data survived the upgrade
    assert "note" in [r[1] for r in upgraded._db().execute("PRAGMA table_info(labels)")]
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])
    with pytest.raises(LlmlabError, match="newer"):
        Store(path)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(LlmlabError, match="junk.sqlite"):
        Store(tmp_path / "junk.sqlite")


WRITES = 40


def _writer(path: str, worker: int) -> None:
    store = Store(path)
    for i in range(WRITES):
        _, m = store.start_exchange(model=f"w{worker}", messages=[{"role": "user", "content": f"{worker}/{i}"}],
                                    params={})
        store.finish_exchange(m, f"answer {worker}/{i}", "stop", {})
        store.add_feedback(m, "flag" if i % 2 else "up", "bad" if i % 2 else None)


def test_parallel_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "s.sqlite")
    Store(path)
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=_writer, args=(path, w)) for w in range(3)]
    threads = [threading.Thread(target=_writer, args=(path, 10 + w)) for w in range(3)]
    for worker in processes + threads:
        worker.start()
    for worker in processes + threads:
        worker.join(timeout=120)
    assert all(p.exitcode == 0 for p in processes) and not any(t.is_alive() for t in threads)
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM messages WHERE role = 'assistant' AND finished IS NOT NULL").fetchone()[0] \
        == 6 * WRITES
    assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 2 * 6 * WRITES
    assert db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == 6 * WRITES
    answers = {r[0] for r in db.execute("SELECT content FROM messages WHERE role = 'assistant'")}
    assert answers == {f"answer {w}/{i}" for w in (0, 1, 2, 10, 11, 12) for i in range(WRITES)}
    assert json.loads(db.execute("SELECT params FROM messages WHERE model = 'w0' LIMIT 1").fetchone()[0]) == {}
