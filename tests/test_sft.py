"""Supervised fine-tuning: masked targets, step-pure batches, and a tiny run that learns its conversations."""

from __future__ import annotations

import json
import pytest
import torch

from llmlab.errors import LlmlabError
from llmlab.model.folder import load_model_folder
from llmlab.tokenizer.bpe import Tokenizer
from llmlab.tokenizer.chat import render_conversation
from llmlab.train.settings import Bookkeeping
from llmlab.train.sft import Conversations, SFTConfig, sft

from conftest import chat

def test_targets_are_the_assistant_tokens_only(tiny_tokenizer):
    tok = Tokenizer.load(tiny_tokenizer)
    ids, mask = render_conversation(tok, chat("red", "apple")["messages"])
    short, _ = render_conversation(tok, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}])
    data = Conversations([(ids, mask), (short, [0] * (len(short) - 2) + [1, 1])], tok.pad_id)
    x, y = data.tensors([0, 1])
    assert x.shape == y.shape == (2, len(ids) - 1)
    assert y[0][y[0] != -1].tolist() == [t for t, m in zip(ids[1:], mask[1:]) if m]
    assert tok.decode(y[0][y[0] != -1].tolist()) == "The apple.<|end_of_turn|>"
    assert (x[1, len(short) - 1 :] == tok.pad_id).all() and (y[1, len(short) - 1 :] == -1).all()  # padding


def test_batches_depend_only_on_the_step_and_split_evenly():
    data = Conversations([([0, 1], [0, 1])] * 10, pad_id=2)
    whole = data.indices(step=3, batch_size=4, part=0, parts=1, seed=0)
    assert whole == data.indices(3, 4, 0, 2, 0) + data.indices(3, 4, 1, 2, 0)
    epoch = [i for step in range(5) for i in data.indices(step, 2, 0, 1, 0)]
    assert sorted(epoch) == list(range(10))
    with pytest.raises(LlmlabError, match="no conversations"):
        Conversations([], pad_id=0)


def test_sft_learns_the_conversations_and_saves_a_chat_model(sft_run, tmp_path, capsys):
    cfg = SFTConfig(train_files=[tmp_path / "train.jsonl"], val_files=[tmp_path / "val.jsonl"], epochs=40,
                    batch_size=6, muon_lr=0.02, embed_lr=0.05, lr=0.004,
                    bookkeeping=Bookkeeping(log_every=1, eval_every=0))
    summary = sft(sft_run, cfg)
    rows = [json.loads(line) for line in (sft_run / "sft" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert summary["steps"] == 40 and len(losses) == 40
    assert losses[-1] < 0.5 * losses[0]
    assert summary["val_loss"] < 1.0  # the held-out file repeats training facts: it must have learned them
    model, tok, info = load_model_folder(sft_run / "chat_sft")
    assert info["stage"] == "sft" and info["steps"] == 40
    prompt = render_conversation(tok, [{"role": "user", "content": "What is blue?"}], add_generation_prompt=True)[0]
    out = []
    with torch.no_grad():
        for _ in range(6):
            out.append(int(model(torch.tensor([prompt + out]))[0][0, -1].argmax()))
    assert tok.decode(out).startswith("The sky.")
    with pytest.raises(LlmlabError, match="already holds checkpoints"):
        sft(sft_run, cfg)


def test_bad_sft_settings_fail_before_training(sft_run, tmp_path):
    with pytest.raises(LlmlabError, match="micro_batch_size 4 does not divide"):
        sft(sft_run, SFTConfig(train_files=[tmp_path / "train.jsonl"], batch_size=6, micro_batch_size=4))
    with pytest.raises(LlmlabError, match="nowhere: no such model"):
        sft(sft_run, SFTConfig(base=str(tmp_path / "nowhere"), train_files=[tmp_path / "train.jsonl"]))
    assert not (sft_run / "sft" / "checkpoints").exists()


def test_sft_resume_from_a_midway_checkpoint_is_exact(sft_run, tmp_path):
    import shutil

    from llmlab.train import checkpoint

    cfg = SFTConfig(train_files=[tmp_path / "train.jsonl"], epochs=10, batch_size=6,
                    bookkeeping=Bookkeeping(checkpoint_every=3, keep_checkpoints=10, log_every=1, eval_every=0))
    other = tmp_path / "other"
    shutil.copytree(sft_run, other)
    sft(sft_run, cfg)  # uninterrupted
    sft(other, cfg)
    for path in checkpoint.list_checkpoints(other / "sft" / "checkpoints")[-2:]:  # lose the last steps...
        shutil.rmtree(path)
    shutil.rmtree(other / "chat_sft")
    sft(other, cfg, resume=True)  # ...and recover them from step 6
    a, _, _ = load_model_folder(sft_run / "chat_sft")
    b, _, _ = load_model_folder(other / "chat_sft")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    rows = [json.loads(line) for line in (other / "sft" / "metrics.jsonl").read_text().splitlines() if "loss" in line]
    assert [r["step"] for r in rows] == list(range(1, 11))


@pytest.mark.slow
def test_sft_on_two_processes_follows_one_process(sft_run, tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    import numpy as np

    two = tmp_path / "two"
    shutil.copytree(sft_run, two)
    args = ["sft", "--sft.train_files", f"[{tmp_path / 'train.jsonl'}]", "--sft.epochs", "10", "--sft.batch_size", "6",
            "--sft.micro_batch_size", "1", "--sft.bookkeeping.log_every", "1", "--sft.bookkeeping.eval_every", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "llmlab", *args, "--run_dir", str(sft_run)], check=True, env=env,
                   capture_output=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "llmlab"]
    result = subprocess.run(torchrun + [*args, "--run_dir", str(two)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    curves = [[json.loads(line)["loss"] for line in (run / "sft" / "metrics.jsonl").read_text().splitlines()
               if '"loss"' in line] for run in (sft_run, two)]
    assert len(curves[0]) == len(curves[1]) == 10
    assert np.allclose(curves[0], curves[1], rtol=1e-4, atol=1e-5)


def test_finished_sft_is_a_no_op_on_resume(sft_run, tmp_path, capsys):
    cfg = SFTConfig(train_files=[tmp_path / "train.jsonl"], epochs=2, batch_size=6)
    sft(sft_run, cfg)
    weights = (sft_run / "chat_sft" / "model.safetensors").read_bytes()
    again = sft(sft_run, cfg, resume=True)
    assert again.get("skipped") and "nothing to do" in capsys.readouterr().out
    assert (sft_run / "chat_sft" / "model.safetensors").read_bytes() == weights
