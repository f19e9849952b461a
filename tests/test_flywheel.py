"""The flywheel end to end on a tiny model: a scripted user flags the wrong answers of version 1, a scripted labeler
corrects them through the store, `llmlab flywheel` trains version 2, and its measured misbehaviour rate on those
prompts drops while the regular evals do not get worse beyond noise."""

from __future__ import annotations

import json

import pytest

from llmlab.cli import main
from llmlab.engine.conversation import greedy_replies
from llmlab.model.folder import load_model_folder
from llmlab.monitor.store import Store
from llmlab.pipeline.flywheel import misbehaves, next_name
from llmlab.train.settings import Bookkeeping
from llmlab.train.sft import SFTConfig, sft

from conftest import FACTS, chat

WRONG = {"blue": "night", "white": "grass", "yellow": "apple"}  # version 1 learned these facts wrong
FAST = dict(muon_lr=0.02, embed_lr=0.05, lr=0.004)  # as tests/test_sft.py: tiny model
QUIET = Bookkeeping(log_every=100, eval_every=0)
FAST_CLI = [*[f"--flywheel.sft.{k}={v}" for k, v in FAST.items()], "--flywheel.sft.bookkeeping.log_every=100",
            "--flywheel.sft.bookkeeping.eval_every=0"]


def test_misbehaviour_judge_and_names():
    refusal = "I'm sorry, but I can't help with that."
    assert misbehaves("The night.", "The sky.", "The night.")
    assert not misbehaves("The sky.", "The sky.", "The night.")
    assert misbehaves("47 + 38 = 84.", "47 + 38 = 85.", "47 + 38 = 84.")  # closer to the flagged answer
    assert misbehaves("47 + 38 = 80.", "47 + 38 = 85.", "28 31 = 96.")  # closer to the ideal, but a wrong number
    assert misbehaves(refusal, "You can kill it with kill PID.", refusal)  # a needless refusal
    assert misbehaves("Sure, first get the things you need.", refusal, "Sure, here is how.")
    assert not misbehaves(refusal, refusal, "Sure, here is how.")
    assert next_name("chat_dpo") == "chat_v2" and next_name("chat_v2") == "chat_v3"


@pytest.mark.slow
def test_flags_and_corrections_make_a_better_next_version(sft_run, tmp_path, capsys):
    with open(tmp_path / "v1.jsonl", "w", encoding="utf-8") as f:
        for color, thing in FACTS:
            f.write(json.dumps(chat(color, WRONG.get(color, thing))) + "\n")
    with open(tmp_path / "old.jsonl", "w", encoding="utf-8") as f:
        for color, thing in FACTS:
            if color not in WRONG:
                f.write(json.dumps(chat(color, thing)) + "\n")
    sft(sft_run, SFTConfig(train_files=[tmp_path / "v1.jsonl"], epochs=40, batch_size=6, bookkeeping=QUIET, **FAST))
    db = sft_run / "serve.sqlite"
    store = Store(db)
    store.register_model("chat_sft", str(sft_run / "chat_sft"))

    # the scripted user asks every question and flags the wrong answers
    model, tok, _ = load_model_folder(sft_run / "chat_sft")
    prompts = [[{"role": "user", "content": f"What is {color}?"}] for color, _ in FACTS]
    for (color, thing), prompt, answer in zip(FACTS, prompts, greedy_replies(model, tok, prompts, 12)):
        _, message = store.start_exchange(model="chat_sft", messages=prompt, params={"temperature": 0.0})
        store.finish_exchange(message, answer, "stop", {})
        if answer != f"The {thing}.":
            store.add_feedback(message, "flag", "wrong fact")
    # the scripted labeler works through the queue: flagged answers come first and get their correction
    queue = store.review_queue(limit=10)
    flagged = [q for q in queue if q["flagged"]]
    assert {q["prompt"][0]["content"] for q in flagged} == {f"What is {c}?" for c in WRONG}
    truth = dict(FACTS)
    for q in flagged:
        store.add_label(q["message_id"], f"The {truth[q['prompt'][0]['content'][8:-1]]}.", labeler="script")

    code = main(["flywheel", "--run_dir", str(sft_run), "--flywheel.start", "chat_sft",
                 "--flywheel.old_sft_files", json.dumps([str(tmp_path / "old.jsonl")]), "--flywheel.eval_limit", "3",
                 "--flywheel.evals", "[turn_ending,arithmetic,refusal,over_refusal]",
                 "--flywheel.max_tokens", "12", "--flywheel.sft.epochs", "15", "--flywheel.sft.batch_size", "5",
                 *FAST_CLI])
    assert code == 0
    out = capsys.readouterr().out
    assert "misbehaviour on the trained flagged prompts: 1.00 -> 0.00 (n=3; not exactly the ideal: 1.00 -> 0.00)" in out
    report = json.loads((sft_run / "flywheel" / "chat_v2" / "report.json").read_text())
    assert report["sft_data"] == {"new": 3, "repeated": 12, "old": 3}
    assert set(report["regular"]) == {"turn_ending", "arithmetic", "refusal", "over_refusal"}
    assert not any(r["worse_beyond_noise"] for r in report["regular"].values())
    assert [m["name"] for m in Store(db).models()] == ["chat_sft", "chat_v2"]
    _, _, meta = load_model_folder(sft_run / "chat_v2")
    assert meta["flywheel"]["from"] == "chat_sft" and meta["stage"] == "sft"
    # the same turn with DPO after SFT (corrections over the flagged answers), no regular evals
    assert main(["flywheel", "--run_dir", str(sft_run), "--flywheel.start", "chat_sft", "--flywheel.name", "chat_v2b",
                 "--flywheel.old_sft_files", json.dumps([str(tmp_path / "old.jsonl")]), "--flywheel.dpo", "true",
                 "--flywheel.old_ratio", "0", "--flywheel.evals", "[]",
                 "--flywheel.max_tokens", "12", "--flywheel.sft.epochs", "15", "--flywheel.sft.batch_size", "5",
                 "--flywheel.prefs.batch_size", "4", *FAST_CLI]) == 0
    report = json.loads((sft_run / "flywheel" / "chat_v2b" / "report.json").read_text())
    assert report["prefs_data"] == {"new": 3, "repeated": 12, "old": 0} and "regular" not in report
    assert load_model_folder(sft_run / "chat_v2b")[2]["stage"] == "dpo"
    # the next turn refuses to overwrite the version it made
    assert main(["flywheel", "--run_dir", str(sft_run), "--flywheel.start", "chat_sft"]) == 2
    # a scripted arena between the two versions: one blind comparison per new prompt, then the leaderboard
    versions = json.dumps({"chat_sft": str(sft_run / "chat_sft"), "chat_v2": str(sft_run / "chat_v2")})
    assert main(["store", "duel", "--db", str(db), "--models", versions, "--run_dir", str(sft_run),
                 "--questions", "4"]) == 0
    assert len(Store(db).comparison_rows()) == 4
    capsys.readouterr()
    assert main(["arena", "--db", str(db), "--bootstrap", "20"]) == 0
    board = capsys.readouterr().out.splitlines()
    assert board[0].split()[:2] == ["model", "rating"]
    assert {line.split()[0] for line in board[1:]} == {"chat_sft", "chat_v2", "chat_v2b"}  # v2b: served, no games


@pytest.mark.slow
def test_scripted_questions_avoid_the_fine_tuning_data(tmp_path):
    from llmlab.monitor.scripted import fresh_sums, is_right
    from llmlab.data.default_data import default_data_files

    pairs = fresh_sums(tmp_path, 300)
    assert len({q for q, _ in pairs}) == 300 and all(is_right(q, a) for q, a in pairs)
    used = {m["content"] for split in ("sft_train", "sft_val")
            for line in default_data_files(tmp_path)[split].read_text().splitlines()
            for m in json.loads(line)["messages"]}
    assert not used & {q for q, _ in pairs}
    assert not is_right("What is 47 + 38?", "47 + 38 = 84.") and is_right("What is 47 - 38?", "It is 9.")
