"""The optimisation loop shared by every training stage (pretrain, sft, ...): schedule, gradient accumulation under
DDP, clipping, metrics, periodic evaluation and checkpoints, and the resume rules.

    run = TrainingRun("sft", RunDir(run_dir).stage("sft"), model, optimizer, d, settings_fp, resume)
    if run.start_step == steps and is_finished(model_folder, settings_fp): ...   # nothing to do
    loss = run.train(LoopSettings(steps, accum, ..., cfg.schedule, cfg.bookkeeping, cfg.grad_clip), micro_loss, evaluate)

A stage supplies `micro_loss(step, micro)`, the loss of this process's micro-batch `micro` of global step `step`
(a pure function of the step, so a resumed run sees exactly the batches it would have seen), and `evaluate()`.
The settings fingerprint that a checkpoint must match is llmlab.train.settings.settings_fingerprint.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from llmlab.errors import LlmlabError
from llmlab.layout import StageDir
from llmlab.train import checkpoint
from llmlab.train.distributed import Dist, all_reduce_sum, barrier
from llmlab.train.schedule import apply_lr, apply_muon_momentum, lr_multiplier, muon_momentum
from llmlab.train.settings import Bookkeeping, Schedule

log = logging.getLogger(__name__)


class MetricsLog:
    """metrics.jsonl (rank 0), truncated to the resumed step so a resumed run's log reads as one run."""

    def __init__(self, path: Path, resume_step: int, enabled: bool, tensorboard_dir: Path | None):
        self.path, self.enabled = path, enabled
        if enabled and path.exists():
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["step"] <= resume_step), encoding="utf-8")
        self.tb = None
        if enabled and tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise LlmlabError("tensorboard logging needs the tensorboard package: pip install tensorboard") from e
            self.tb = SummaryWriter(str(tensorboard_dir))

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, row["step"])


def is_finished(model_folder: Path, settings_fp: str) -> bool:
    """Whether `model_folder` holds the output of a finished run with these settings (its model.json says so)."""
    info = Path(model_folder) / "model.json"
    return info.exists() and json.loads(info.read_text(encoding="utf-8")).get("settings_fingerprint") == settings_fp


def resume_point(ckpt_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, settings_fp: str,
                 resume: bool) -> tuple[int, float]:
    """(start step, training seconds so far): from the newest intact checkpoint with --resume, else (0, 0).
    Without --resume, existing checkpoints are an error rather than silently overwritten."""
    if not resume:
        if checkpoint.list_checkpoints(ckpt_dir):
            raise LlmlabError(f"{ckpt_dir} already holds checkpoints: pass --resume true to continue, or use a new --run_dir")
        return 0, 0.0
    path = checkpoint.latest_intact(ckpt_dir)
    if path is None:
        log.info("no intact checkpoint in %s, starting from scratch", ckpt_dir)
        return 0, 0.0
    state = checkpoint.load_checkpoint(path, model, optimizer)
    if state["fingerprint"] != settings_fp:
        raise LlmlabError(f"{path}: made with other settings than this run's; resume with the same config")
    log.info("resumed from %s (step %d)", path, state["step"])
    return state["step"], state["train_time"]


@dataclass
class LoopSettings:
    """What the loop needs besides the model: the step count and how a step is split, for the throughput and MFU
    figures the token count and FLOPs of a step, and the stage's shared config groups."""

    steps: int
    accum: int  # micro-batches per process per step
    tokens_per_step: int  # over all processes (for throughput)
    flops_per_token: float
    peak_flops: float  # per process
    schedule: Schedule
    bookkeeping: Bookkeeping
    grad_clip: float = 0.0  # clip the global gradient norm to this (0: off)


class TrainingRun:
    """One training stage's optimisation: resumed from the newest intact checkpoint of its work folder when asked
    (`start_step`, `train_time`), its metrics log, and `train()`, the loop to the last step."""

    def __init__(self, name: str, work: StageDir, model: torch.nn.Module, optimizer: torch.optim.Optimizer, d: Dist,
                 settings_fp: str, resume: bool):
        self.name, self.work, self.model, self.optimizer, self.d = name, work, model, optimizer, d
        self.settings_fp = settings_fp
        self.start_step, self.train_time = resume_point(work.checkpoints, model, optimizer, settings_fp, resume)
        self.metrics: MetricsLog | None = None

    def open_metrics(self, tensorboard: bool) -> MetricsLog:
        """metrics.jsonl of the stage, truncated to the resumed step (rank 0 writes)."""
        self.metrics = MetricsLog(self.work.metrics, self.start_step, self.d.is_main,
                                  self.work.tensorboard if tensorboard else None)
        return self.metrics

    def train(self, s: LoopSettings, micro_loss: Callable[[int, int], torch.Tensor], evaluate: Callable[[], dict],
              train_model: torch.nn.Module | None = None) -> float:
        """Train from start_step to s.steps (train_model: the module to call, e.g. DDP- or compile-wrapped; default
        the model) and checkpoint the end. Returns the last step's loss; `train_time` holds the training seconds."""
        from tqdm import tqdm

        model, optimizer, d = self.model, self.optimizer, self.d
        train_model = train_model if train_model is not None else model
        metrics = self.metrics or self.open_metrics(s.bookkeeping.tensorboard)
        book, ckpt_dir = s.bookkeeping, self.work.checkpoints
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if d.device.type == "cuda" else nullcontext()
        bar = tqdm(total=s.steps, initial=self.start_step, desc=self.name, unit="step", disable=not d.is_main,
                   dynamic_ncols=True)
        window_seconds, window_tokens = 0.0, 0  # throughput counts training steps only, not evaluation or checkpoints
        loss_value = float("nan")
        for step in range(self.start_step, s.steps):
            t0 = time.perf_counter()
            lr_mult = lr_multiplier(step, s.steps, s.schedule.warmup_steps, s.schedule.warmdown_frac)
            apply_lr(optimizer, lr_mult)
            apply_muon_momentum(optimizer, muon_momentum(step))
            model.train()
            step_loss = torch.zeros((), device=d.device)
            for m in range(s.accum):
                sync = m == s.accum - 1 or d.world == 1
                with (nullcontext() if sync else train_model.no_sync()), autocast:
                    loss = micro_loss(step, m)
                    (loss / s.accum).backward()
                step_loss += loss.detach() / s.accum
            if s.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_value = float(all_reduce_sum(step_loss, d)) / d.world
            step_seconds = time.perf_counter() - t0
            self.train_time += step_seconds
            window_seconds, window_tokens = window_seconds + step_seconds, window_tokens + s.tokens_per_step
            done = step + 1
            bar.update(1)
            if done % book.log_every == 0 or done == s.steps:
                tok_s = window_tokens / window_seconds
                mfu = tok_s * s.flops_per_token / (s.peak_flops * d.world)
                bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{tok_s:,.0f}", mfu=f"{mfu:.0%}")
                metrics.write({"step": done, "loss": loss_value, "lr_mult": lr_mult, "tokens": done * s.tokens_per_step,
                               "tok_s": tok_s, "mfu": mfu, "train_time": self.train_time})
                window_seconds, window_tokens = 0.0, 0
            if book.eval_every and done % book.eval_every == 0 and done != s.steps and d.is_main:
                metrics.write({"step": done, **evaluate(), "train_time": self.train_time})
            if book.checkpoint_every and done % book.checkpoint_every == 0 and done != s.steps and d.is_main:
                self._checkpoint(done, book.keep_checkpoints)
            barrier(d)
        bar.close()
        if d.is_main:
            self._checkpoint(s.steps, book.keep_checkpoints)
        barrier(d)
        return loss_value

    def _checkpoint(self, step: int, keep: int) -> None:
        checkpoint.save_checkpoint(self.work.checkpoints, step, self.model, self.optimizer,
                                   {"fingerprint": self.settings_fp, "train_time": self.train_time}, keep)
