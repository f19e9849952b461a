"""Supervised fine-tuning (SFT): a base model learns to hold a conversation from ideal Q&A written to the labeling
instructions (docs/labeling.md). Only the assistant's tokens are trained (the loss mask of llmlab.tokenizer.chat).

    llmlab sft --run_dir runs/x                              # fine-tune runs/x/base on the default mixture
    llmlab sft --run_dir runs/x --sft.train_files '[my_chats.jsonl]' --sft.val_files '[held_out.jsonl]'
    torchrun --standalone --nproc_per_node 2 -m llmlab sft --run_dir runs/x

Outputs under <run_dir>/sft/: config.yaml, metrics.jsonl, checkpoints/; and the chat model folder
<run_dir>/chat_sft/. The default data is written once to <run_dir>/assistant_data/ (llmlab.data.default_data). Conversations are padded
per micro-batch (no packing); batches are a pure function of the step, so resume is exact, as in pre-training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from llmlab.errors import LlmlabError
from llmlab.files import save_config, to_plain
from llmlab.layout import RunDir
from llmlab.model.flops import flops_per_token
from llmlab.tokenizer.conversations import load_sft_file
from llmlab.train.distributed import Dist, barrier, distributed, wrap_ddp
from llmlab.train.finetune import FinetuneConfig, check_batch, data_files, load_start, save_tuned, trainable_setup
from llmlab.train.loop import LoopSettings, TrainingRun, is_finished
from llmlab.train.settings import settings_fingerprint


@dataclass
class SFTConfig(FinetuneConfig):
    """Fine-tuning settings (and those of FinetuneConfig).

    Args:
        base: the model to fine-tune: an llmlab model folder, a Hugging Face folder, a GGUF file, hf:org/name or
            smollm2 (the packaged SmolLM2-135M-Instruct); None: <run_dir>/base.
        micro_batch_size: conversations per forward/backward on each process (None: the whole per-process batch).
        on_too_long: what to do with a conversation longer than the model's context: skip or truncate.
    """

    base: str | None = None
    micro_batch_size: int | None = None
    on_too_long: str = "truncate"
    # 4 epochs at pre-training's Muon rate: on the default mixture 2 epochs at a quarter of it left the assistant at
    # 0.53 on taught facts in unseen phrasings and 0.26 on multi-turn chats; 4 epochs at 4x gave 0.91 and 0.81,
    # refusals 1.00, over-refusal 0.00 (docs/LOG.md, 2026-12-03). The AdamW rates rise with it.
    epochs: float = 4.0
    muon_lr: float = 0.02
    lr: float = 0.008
    embed_lr: float = 0.04


class Conversations:
    """Rendered conversations (ids, mask) served as padded micro-batches that depend only on the step."""

    def __init__(self, examples: list[tuple[list[int], list[int]]], pad_id: int):
        if not examples:
            raise LlmlabError("no conversations to train on")
        self.examples, self.pad_id = examples, pad_id

    def indices(self, step: int, batch_size: int, part: int, parts: int, seed: int) -> list[int]:
        n, local = len(self.examples), batch_size // parts
        positions = range(step * batch_size + part * local, step * batch_size + (part + 1) * local)
        orders = {}
        for p in positions:
            if p // n not in orders:
                orders[p // n] = np.random.default_rng([seed, p // n]).permutation(n)
        return [int(orders[p // n][p % n]) for p in positions]

    def tensors(self, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, T) and targets (B, T); targets are -1 where the mask is 0 and on padding."""
        length = max(len(self.examples[i][0]) for i in rows) - 1
        x = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        y = torch.full((len(rows), length), -1, dtype=torch.long)
        for r, i in enumerate(rows):
            ids, mask = self.examples[i]
            n = len(ids) - 1
            x[r, :n] = torch.tensor(ids[:-1])
            y[r, :n] = torch.tensor([t if m else -1 for t, m in zip(ids[1:], mask[1:])])
        return x, y


def _load(files: list[Path], tok, max_tokens: int, policy: str) -> tuple[list, list[dict]]:
    examples, summaries = [], []
    for path in files:
        records, summary = load_sft_file(Path(path), tok, max_tokens=max_tokens, on_too_long=policy)
        examples += [(r["ids"], r["mask"]) for r in records]
        summaries.append(summary)
    return examples, summaries


def sft(run_dir: Path, cfg: SFTConfig, resume: bool = False) -> dict:
    """Fine-tune; returns a summary. Under torchrun every process calls this."""
    with distributed(cfg.bookkeeping.device) as d:
        return _sft(RunDir(run_dir), cfg, resume, d)


def _sft(run: RunDir, cfg: SFTConfig, resume: bool, d: Dist) -> dict:
    work, model_dir = run.stage("sft"), run.model_of("sft")
    model, tok, base_sha = load_start(cfg.base or run.model_of("pretrain"), d.device)
    max_tokens = model.cfg.seq_len + 1  # inputs and targets are the ids shifted by one
    files = data_files(run.root, cfg, d, "sft")
    train, train_summary = _load(files["train"], tok, max_tokens, cfg.on_too_long)
    val, val_summary = _load(files["val"], tok, max_tokens, cfg.on_too_long)
    data, val_data = Conversations(train, tok.pad_id), val
    check_batch(cfg, d)
    micro = cfg.micro_batch_size or cfg.batch_size // d.world
    if (cfg.batch_size // d.world) % micro:
        raise LlmlabError(f"micro_batch_size {micro} does not divide the per-process batch {cfg.batch_size // d.world}")
    accum = cfg.batch_size // d.world // micro
    steps = max(1, math.ceil(cfg.epochs * len(train) / cfg.batch_size))

    model.train()
    optimizer = trainable_setup(model, cfg)
    settings_fp = settings_fingerprint(cfg, base=base_sha, train=train_summary,
                                       tokenizer=tok.sha256)
    training = TrainingRun("sft", work, model, optimizer, d, settings_fp, resume)
    if training.start_step == steps and is_finished(model_dir, settings_fp):
        print(f"{model_dir} is already trained with these settings; nothing to do")
        return {"steps": steps, "train_seconds": training.train_time, "skipped": True}
    if d.is_main:
        save_config(work.config, {**to_plain(cfg), "steps": steps, "data": {"train": train_summary, "val": val_summary}})
        print(f"sft: {len(train):,} training conversations ({len(val):,} held out), {steps} steps of {cfg.batch_size}")
    train_model = wrap_ddp(model, d)

    def micro_loss(step: int, m: int) -> torch.Tensor:
        """This micro-batch's summed token losses over the trained tokens of the whole global batch, scaled so that
        averaging over micro-batches and processes gives the global per-token mean for any number of processes."""
        everyone = data.indices(step, cfg.batch_size, 0, 1, cfg.seed)
        global_tokens = sum(sum(data.examples[i][1][1:]) for i in everyone)
        x, y = data.tensors(data.indices(step, cfg.batch_size, d.rank * accum + m, d.world * accum, cfg.seed))
        mean = train_model(x.to(d.device), y.to(d.device), return_logits=False)[1]
        return mean * int((y != -1).sum()) / max(1, global_tokens) * (d.world * accum)

    @torch.inference_mode()
    def evaluate() -> dict:
        """Mean loss per trained token over the held-out conversations."""
        if not val_data:
            return {}
        model.eval()
        held_out = Conversations(val_data, tok.pad_id)
        total, count = 0.0, 0
        for first in range(0, len(val_data), 16):
            x, y = held_out.tensors(list(range(first, min(len(val_data), first + 16))))
            n = int((y != -1).sum())
            total += float(model(x.to(d.device), y.to(d.device))[1]) * n
            count += n
        return {"val_loss": total / max(1, count)}

    from llmlab.hardware import peak_flops

    # attention FLOPs over the mean conversation length, not the model's whole context (SmolLM2's 8,192 made MFU
    # read 170%)
    mean_tokens = sum(len(ids) for ids, _ in train) / len(train)
    settings = LoopSettings(steps, accum, int(cfg.batch_size * mean_tokens),
                            flops_per_token(model.cfg, round(mean_tokens), cfg.lora_rank), peak_flops(d.device)[0],
                            cfg.schedule, cfg.bookkeeping, cfg.grad_clip)
    loss = training.train(settings, micro_loss, evaluate, train_model)
    train_time = training.train_time
    summary = {"steps": steps, "final_loss": loss, "train_seconds": train_time}
    if d.is_main:
        summary.update(evaluate())
        training.metrics.write({"step": steps, **{k: v for k, v in summary.items() if k == "val_loss"},
                                "train_time": train_time})
        save_tuned(model_dir, model, cfg, tok,
                   {"stage": "sft", "steps": steps, **summary, "settings_fingerprint": settings_fp})
    barrier(d)
    return summary
