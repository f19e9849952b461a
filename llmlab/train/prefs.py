"""Preference tuning with DPO (Rafailov et al., 2023): from labelers' comparisons (chosen vs rejected answer to
the same prompt), raise the policy's log-likelihood ratio of chosen over rejected relative to a frozen reference
(the starting model), without a reward model:

    loss = -log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r)))) + alpha * NLL(c) / |c|

where log p(answer) sums the token log-probabilities of the answer and its end of turn given the prompt. The last
term (RPO, Pang et al. 2024; TRL's `rpo_alpha`) keeps the chosen answers likely: without it, on the default data
DPO raised the margin mostly by pushing the shared refusal sentence down everywhere, and the tuned model stopped
refusing forbidden requests (docs/LOG.md).

    llmlab prefs --run_dir runs/x                  # tune runs/x/chat_sft on the default comparisons
    llmlab prefs --run_dir runs/x --prefs.train_files '[pairs.jsonl]' --prefs.beta 0.1

Reported on held-out pairs, for the starting model and after tuning: preference accuracy (the share of pairs whose
chosen answer is more likely than the rejected one) and, after tuning, DPO's reward accuracy and mean reward margin
beta * (policy - reference log-ratio difference). Outputs: <run_dir>/prefs/ and the model folder <run_dir>/chat_dpo/.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from llmlab.errors import LlmlabError
from llmlab.files import read_json, save_config, to_plain
from llmlab.layout import RunDir
from llmlab.model.flops import flops_per_token
from llmlab.tokenizer.chat import render_conversation
from llmlab.tokenizer.conversations import load_preference_file
from llmlab.train.distributed import Dist, barrier, distributed, wrap_ddp
from llmlab.train.finetune import FinetuneConfig, check_batch, data_files, load_start, save_tuned, trainable_setup
from llmlab.train.loop import LoopSettings, TrainingRun, is_finished
from llmlab.train.settings import Bookkeeping, Schedule, settings_fingerprint
from llmlab.train.sft import Conversations


@dataclass
class PrefsConfig(FinetuneConfig):
    """DPO settings (and those of FinetuneConfig; the files hold preference pairs).

    Args:
        start: the model to tune (it is also the frozen reference): an llmlab model folder or any spec `--model`
            takes (Hugging Face folder, GGUF file, hf:org/name, smollm2); None: <run_dir>/chat_sft.
        beta: DPO's inverse temperature: how far the policy may move from the reference.
        rpo_alpha: weight of the per-token negative log-likelihood of the chosen answers added to the DPO loss.
    """

    start: str | None = None
    beta: float = 0.1
    rpo_alpha: float = 1.0
    # DPO should move a chat model a little: at 4x these rates the tuned model lost facts it had (docs/LOG.md)
    lr: float = 0.0002
    embed_lr: float = 0.001
    muon_lr: float = 0.0005
    schedule: Schedule = field(default_factory=lambda: Schedule(warmup_steps=5, warmdown_frac=0.5))
    bookkeeping: Bookkeeping = field(default_factory=lambda: Bookkeeping(log_every=5, eval_every=0, checkpoint_every=50))


def render_pairs(tok, records: list[dict]) -> list[tuple[list[int], list[int]]]:
    """Each pair as two rendered conversations (chosen, rejected), masks on the answer and its end of turn."""
    rows = []
    for r in records:
        for answer in (r["chosen"], r["rejected"]):
            rows.append(render_conversation(tok, r["prompt_messages"] + [{"role": "assistant", "content": answer}]))
    return rows


def answer_logprobs(model, seqs: Conversations, rows: list[int], device) -> tuple[torch.Tensor, torch.Tensor]:
    """(len(rows),) summed log-probabilities of each row's masked (answer) tokens, and their token counts."""
    x, y = seqs.tensors(rows)
    logits, _ = model(x.to(device))
    y = y.to(device)
    logp = -F.cross_entropy(logits.transpose(1, 2), y.clamp_min(0), reduction="none")  # (B, T)
    counted = y != -1
    return (logp * counted).sum(dim=1), counted.sum(dim=1)


@torch.inference_mode()
def all_logprobs(model, seqs: Conversations, device, batch: int = 32) -> torch.Tensor:
    model.eval()
    n = len(seqs.examples)
    return torch.cat([answer_logprobs(model, seqs, list(range(i, min(n, i + batch))), device)[0] for i in range(0, n, batch)])


def preference_metrics(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> dict:
    """policy, reference: (2N,) answer log-probs, chosen at even and rejected at odd positions."""
    likelihood_acc = float((policy[0::2] > policy[1::2]).float().mean())
    margin = beta * ((policy[0::2] - reference[0::2]) - (policy[1::2] - reference[1::2]))
    return {"pref_accuracy": likelihood_acc, "reward_accuracy": float((margin > 0).float().mean()),
            "reward_margin": float(margin.mean())}


def prefs(run_dir: Path, cfg: PrefsConfig, resume: bool = False) -> dict:
    """Tune; returns a summary (preference metrics before and after). Under torchrun every process calls this."""
    with distributed(cfg.bookkeeping.device) as d:
        return _prefs(RunDir(run_dir), cfg, resume, d)


def _prefs(run: RunDir, cfg: PrefsConfig, resume: bool, d: Dist) -> dict:
    work, model_dir = run.stage("prefs"), run.model_of("prefs")
    model, tok, start_sha = load_start(cfg.start or run.model_of("sft"), d.device)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    files = data_files(run.root, cfg, d, "prefs")
    loaded = {}
    for split, paths in files.items():
        records = []
        for path in paths:
            records += load_preference_file(Path(path), tok, max_tokens=model.cfg.seq_len + 1)[0]
        loaded[split] = records
    if not loaded["train"]:
        raise LlmlabError("no preference pairs to train on")
    train = Conversations(render_pairs(tok, loaded["train"]), tok.pad_id)
    val = Conversations(render_pairs(tok, loaded["val"]), tok.pad_id) if loaded["val"] else None
    n_pairs = len(loaded["train"])
    check_batch(cfg, d)
    steps = max(1, math.ceil(cfg.epochs * n_pairs / cfg.batch_size))
    settings_fp = settings_fingerprint(cfg, start=start_sha, pairs=n_pairs, tokenizer=tok.sha256)
    if resume and is_finished(model_dir, settings_fp):  # before scoring the reference: reruns are quick
        print(f"{model_dir} is already trained with these settings; nothing to do")
        return {"steps": steps, "train_seconds": read_json(model_dir / "model.json").get("train_seconds"),
                "skipped": True}
    ref_train = all_logprobs(reference, train, d.device)  # the reference never changes: score it once
    ref_val = all_logprobs(reference, val, d.device) if val else None
    before = {"pref_accuracy": preference_metrics(ref_val, ref_val, cfg.beta)["pref_accuracy"]} if val else {}

    optimizer = trainable_setup(model, cfg)
    training = TrainingRun("prefs", work, model, optimizer, d, settings_fp, resume)
    if d.is_main:
        save_config(work.config, {**to_plain(cfg), "steps": steps, "pairs": {k: len(v) for k, v in loaded.items()}})
        print(f"prefs: {n_pairs:,} training pairs ({len(loaded['val']):,} held out), {steps} steps of {cfg.batch_size}"
              + (f"; starting model: held-out preference accuracy {before['pref_accuracy']:.3f}" if before else ""))
    train_model = wrap_ddp(model, d)
    pair_order = Conversations([([0], [0])] * n_pairs, tok.pad_id)  # step-pure order over pair indices

    def micro_loss(step: int, m: int) -> torch.Tensor:
        pairs = pair_order.indices(step, cfg.batch_size, d.rank, d.world, cfg.seed)
        rows = [2 * p + k for p in pairs for k in (0, 1)]  # chosen, rejected of each pair
        policy, lengths = answer_logprobs(train_model, train, rows, d.device)
        ref = ref_train[rows].to(d.device)
        logits = cfg.beta * ((policy[0::2] - ref[0::2]) - (policy[1::2] - ref[1::2]))
        chosen_nll = -(policy[0::2] / lengths[0::2]).mean()
        return -F.logsigmoid(logits).mean() + cfg.rpo_alpha * chosen_nll

    def evaluate() -> dict:
        return preference_metrics(all_logprobs(model, val, d.device), ref_val, cfg.beta) if val else {}

    from llmlab.hardware import peak_flops

    # attention FLOPs over the mean conversation length, not the model's whole context (SmolLM2's 8,192 made MFU
    # read 170%)
    mean_tokens = sum(len(ids) for ids, _ in train.examples) / len(train.examples)
    settings = LoopSettings(steps, 1, int(2 * cfg.batch_size * mean_tokens),
                            flops_per_token(model.cfg, round(mean_tokens), cfg.lora_rank),
                            peak_flops(d.device)[0], cfg.schedule, cfg.bookkeeping, cfg.grad_clip)
    loss = training.train(settings, micro_loss, evaluate, train_model)
    train_time = training.train_time
    summary = {"steps": steps, "final_loss": loss, "train_seconds": train_time,
               "before": before, "after": evaluate()}
    if d.is_main:
        training.metrics.write({"step": steps, **summary["after"], "train_time": train_time})
        save_tuned(model_dir, model, cfg, tok,
                   {"stage": "dpo", "steps": steps, **summary, "settings_fingerprint": settings_fp})
    barrier(d)
    return summary
