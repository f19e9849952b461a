"""Train a verifier (outcome reward model, Cobbe et al. 2021) on a reasoner's own attempts, each labelled right or
wrong by the task's checker: at every token of a solution, binary cross-entropy of the value head against the label.

    examples = [VerifierExample(problem, attempt.text, attempt.right) for ...]   # e.g. from engine.thinking.attempt
    summary = train_verifier(StageDir(run.lab("think") / "verifier"), Path("runs/x/verifier"), "runs/x/reasoner",
                             get_task("word_problems"), examples, VerifierConfig())

The verifier starts from the reasoner's weights (it reads solutions the way their writer does) with a zero head.
Every token of a solution is trained towards its solution's label, so the verifier also scores unfinished
solutions (what a step-level search needs). A fixed share of the problems (never of single attempts, so attempts at
one problem never straddle the split) is held out: loss and accuracy of the final value are reported on it.
Outputs: <work>/config.yaml, metrics.jsonl, checkpoints/ (exact resume), and the verifier folder.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from llmlab.engine.thinking import solution_ids
from llmlab.errors import LlmlabError
from llmlab.files import save_config, to_plain
from llmlab.hardware import peak_flops
from llmlab.layout import StageDir
from llmlab.model.flops import flops_per_token
from llmlab.model.loading import load_model
from llmlab.model.verifier import Verifier, save_verifier
from llmlab.tasks.base import Problem, Task
from llmlab.train.distributed import distributed
from llmlab.train.loop import LoopSettings, TrainingRun, is_finished
from llmlab.train.optim import build_optimizer
from llmlab.train.settings import Bookkeeping, Schedule, settings_fingerprint


class VerifierExample(NamedTuple):
    problem: Problem
    text: str  # the attempt's solution text
    right: bool  # the checker's verdict


@dataclass
class VerifierConfig:
    """Verifier training settings.

    Args:
        epochs: passes over the training attempts.
        batch_size: attempts per optimizer step.
        lr: AdamW learning rate (trunk and head).
        weight_decay: decoupled weight decay.
        val_share: share of the problems held out.
        chat: ask through the chat template (None: when the tokenizer has a chat format), as the attempts were made.
        schedule: the learning-rate schedule.
        grad_clip: clip the gradient norm (0: off).
        seed: seeds the order of the attempts.
        bookkeeping: logging, evaluation, checkpoints, device.
    """

    epochs: float = 2.0
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.0
    val_share: float = 0.1
    chat: bool | None = None
    schedule: Schedule = field(default_factory=lambda: Schedule(warmup_steps=10, warmdown_frac=0.5))
    grad_clip: float = 1.0
    seed: int = 0
    bookkeeping: Bookkeeping = field(default_factory=lambda: Bookkeeping(log_every=10, eval_every=0,
                                                                         checkpoint_every=100))


def held_out(problem: Problem, share: float) -> bool:
    """Whether a problem is in the verifier's validation share (a fixed function of its question)."""
    return int(hashlib.sha256(problem.question.encode()).hexdigest()[:8], 16) % 1000 < share * 1000


def render(tok, task: Task, example: VerifierExample, chat: bool, max_len: int) -> tuple[list[int], int, float]:
    """(ids, where the solution starts, label): prompt + solution (+ end of turn in a chat), cut to max_len."""
    ids, start = solution_ids(tok, task, example.problem, example.text, chat, max_len)
    return ids, start, float(example.right)


def batch(rows: list[tuple[list[int], int, float]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids (B, T) right-padded, labels (B,), and the solution mask (B, T): positions whose value is trained."""
    T = max(len(ids) for ids, _, _ in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.bool)
    for r, (row_ids, start, _) in enumerate(rows):
        ids[r, : len(row_ids)] = torch.tensor(row_ids)
        mask[r, start : len(row_ids)] = True
    return ids, torch.tensor([label for _, _, label in rows]), mask


def value_loss(values: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the solution positions: every token of a solution against its label."""
    targets = labels[:, None].expand_as(values)  # (B, T)
    return F.binary_cross_entropy_with_logits(values[mask], targets[mask])


def final_values(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) the value at each row's last solution token: the verifier's score of the whole solution."""
    last = mask.long().cumsum(dim=1).argmax(dim=1)  # the last True position of each row
    return values[torch.arange(values.shape[0]), last]


def train_verifier(work: StageDir, folder: Path, start: str | Path, task: Task, examples: list[VerifierExample],
                   cfg: VerifierConfig, resume: bool = False) -> dict:
    """Train and save the verifier; returns {"steps", "val_loss", "val_accuracy", "train", "val", "skipped"?}."""
    with distributed(cfg.bookkeeping.device) as d:
        if d.world > 1:
            raise LlmlabError("verifier training runs on one process")
        lm, tok, info = load_model(start, d.device)
        chat = bool(tok.chat_format) if cfg.chat is None else cfg.chat
        rows = {False: [], True: []}
        for example in examples:
            rows[held_out(example.problem, cfg.val_share)].append(render(tok, task, example, chat, lm.cfg.seq_len))
        train, val = rows[False], rows[True]
        if not train or len({label for _, _, label in train}) < 2:
            raise LlmlabError(f"the verifier needs right and wrong attempts to learn from; got {len(train)} training "
                              f"attempts, {sum(label for _, _, label in train):.0f} right")
        verifier = Verifier(lm).to(d.device)
        optimizer = build_optimizer(verifier, "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps = max(1, math.ceil(cfg.epochs * len(train) / cfg.batch_size))
        fp = settings_fingerprint(cfg, start=info.get("weights"), task=task.name,
                                  data=hashlib.sha256(repr([(r[0], r[2]) for r in train]).encode()).hexdigest())
        run = TrainingRun("verifier", work, verifier, optimizer, d, fp, resume)
        if run.start_step == steps and is_finished(folder, fp):
            return {"steps": steps, "skipped": True}
        save_config(work.config, {**to_plain(cfg), "task": task.name, "start": str(start), "steps": steps,
                                  "attempts": {"train": len(train), "val": len(val),
                                               "train_right": int(sum(r[2] for r in train))}})

        def order(epoch: int) -> np.ndarray:
            return np.random.default_rng([cfg.seed, epoch]).permutation(len(train))

        def micro_loss(step: int, _micro: int) -> torch.Tensor:
            picks = [step * cfg.batch_size + i for i in range(cfg.batch_size)]
            ids, labels, mask = batch([train[int(order(p // len(train))[p % len(train)])] for p in picks], tok.pad_id)
            return value_loss(verifier(ids.to(d.device)), labels.to(d.device), mask.to(d.device))

        @torch.inference_mode()
        def evaluate() -> dict:
            if not val:
                return {}
            verifier.eval()
            losses, hits = [], 0
            for first in range(0, len(val), cfg.batch_size):
                ids, labels, mask = batch(val[first : first + cfg.batch_size], tok.pad_id)
                values = verifier(ids.to(d.device))
                losses.append(float(value_loss(values, labels.to(d.device), mask.to(d.device))) * len(labels))
                hits += int(((final_values(values, mask.to(d.device)) > 0).float().cpu() == labels).sum())
            return {"val_loss": sum(losses) / len(val), "val_accuracy": hits / len(val)}

        mean_tokens = sum(len(r[0]) for r in train) / len(train)
        settings = LoopSettings(steps, 1, int(cfg.batch_size * mean_tokens), flops_per_token(lm.cfg, round(mean_tokens)),
                                peak_flops(d.device)[0], cfg.schedule, cfg.bookkeeping, cfg.grad_clip)
        run.train(settings, micro_loss, evaluate)
        summary = {"steps": steps, "train": len(train), "val": len(val), **evaluate()}
        save_verifier(folder, verifier, tok, {"task": task.name, "start": str(start), "settings_fingerprint": fp,
                                              **{k: v for k, v in summary.items() if k != "steps"}, "steps": steps})
        return summary
