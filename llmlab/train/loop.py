"""The optimisation loop shared by every training stage (pretrain, sft, ...): schedule, gradient accumulation under
DDP, clipping, metrics, periodic evaluation and checkpoints, and the resume rules.

A stage supplies `micro_loss(step, micro)`, the loss of this process's micro-batch `micro` of global step `step`
(a pure function of the step, so a resumed run sees exactly the batches it would have seen), and `evaluate()`.
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
from llmlab.files import fingerprint
from llmlab.train import checkpoint
from llmlab.train.distributed import Dist, all_reduce_sum, barrier
from llmlab.train.schedule import apply_lr, apply_muon_momentum, lr_multiplier, muon_momentum

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


# Settings that change logging, evaluation, checkpointing or placement, not the arithmetic of training: a run may
# be resumed with different values (and with another number of processes, which keeps the global batch).
BOOKKEEPING_FIELDS = ("eval_every", "eval_tokens", "checkpoint_every", "keep_checkpoints", "log_every", "device",
                      "compile", "tensorboard")


def settings_fingerprint(cfg, **context) -> str:
    """What a checkpoint must match to be resumed: the config's arithmetic settings and the given context
    (data, starting model, tokenizer...)."""
    settings = {k: v for k, v in vars(cfg).items() if k not in BOOKKEEPING_FIELDS}
    return fingerprint({"cfg": settings, **context})


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
    steps: int
    accum: int  # micro-batches per process per step
    tokens_per_step: int  # over all processes (for throughput)
    flops_per_token: float
    peak_flops: float  # per process
    warmup_steps: int
    warmdown_frac: float
    grad_clip: float
    log_every: int
    eval_every: int
    checkpoint_every: int
    keep_checkpoints: int


def run_steps(name: str, model: torch.nn.Module, train_model: torch.nn.Module, optimizer: torch.optim.Optimizer,
              d: Dist, s: LoopSettings, micro_loss: Callable[[int, int], torch.Tensor], evaluate: Callable[[], dict],
              metrics: MetricsLog, ckpt_dir: Path, settings_fp: str, start_step: int, train_time: float) -> tuple[float, float]:
    """Train from start_step to s.steps; checkpoint the end. Returns (last step's loss, total training seconds)."""
    from tqdm import tqdm

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if d.device.type == "cuda" else nullcontext()
    bar = tqdm(total=s.steps, initial=start_step, desc=name, unit="step", disable=not d.is_main, dynamic_ncols=True)
    window_seconds, window_tokens = 0.0, 0  # throughput counts training steps only, not evaluation or checkpoints
    loss_value = float("nan")
    for step in range(start_step, s.steps):
        t0 = time.perf_counter()
        lr_mult = lr_multiplier(step, s.steps, s.warmup_steps, s.warmdown_frac)
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
        train_time += step_seconds
        window_seconds, window_tokens = window_seconds + step_seconds, window_tokens + s.tokens_per_step
        done = step + 1
        bar.update(1)
        if done % s.log_every == 0 or done == s.steps:
            tok_s = window_tokens / window_seconds
            mfu = tok_s * s.flops_per_token / (s.peak_flops * d.world)
            bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{tok_s:,.0f}", mfu=f"{mfu:.0%}")
            metrics.write({"step": done, "loss": loss_value, "lr_mult": lr_mult, "tokens": done * s.tokens_per_step,
                           "tok_s": tok_s, "mfu": mfu, "train_time": train_time})
            window_seconds, window_tokens = 0.0, 0
        if s.eval_every and done % s.eval_every == 0 and done != s.steps and d.is_main:
            metrics.write({"step": done, **evaluate(), "train_time": train_time})
        if s.checkpoint_every and done % s.checkpoint_every == 0 and done != s.steps and d.is_main:
            checkpoint.save_checkpoint(ckpt_dir, done, model, optimizer, {"fingerprint": settings_fp, "train_time": train_time},
                                       s.keep_checkpoints)
        barrier(d)
    bar.close()
    if d.is_main:
        checkpoint.save_checkpoint(ckpt_dir, s.steps, model, optimizer, {"fingerprint": settings_fp, "train_time": train_time},
                                   s.keep_checkpoints)
    barrier(d)
    return loss_value, train_time
