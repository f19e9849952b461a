"""Pre-training: compress the token shards of a run into a transformer that predicts the next token.

    llmlab pretrain --run_dir runs/x                     # the default CPU run (see PretrainConfig for the dial)
    torchrun --standalone --nproc_per_node 2 -m llmlab pretrain --run_dir runs/x     # DDP, gloo on CPU
    llmlab pretrain --run_dir runs/x --resume true       # continue exactly from the newest intact checkpoint

Outputs under <run_dir>/pretrain/: config.yaml, metrics.jsonl (one JSON object per logged step or eval),
checkpoints/step_NNNNNN/; and the base model folder <run_dir>/base/ (see llmlab.model.folder).

The depth dial: `depth` sets the model (ModelConfig.from_depth) and, unless given, the training quantities:
    batch_size  = 16 * max(1, depth // 4) sequences of seq_len tokens
    muon_lr     = 0.02                             Muon's update is normalised, so one rate serves every width
    embed_lr    = 0.05 * min(1, 192 / d_model)     AdamW on the tied embedding matrix. It is also the head:
                                                   Adam moves each entry ~lr a step and a logit sums d_model of them,
                                                   so the rate falls as 1/width (muP's output-layer rule). 0.05 at the
                                                   CPU default's width 192; at width 768 0.05 diverged on an H100
                                                   (loss 10 -> 28) and 0.0125 trained best (docs/LOG.md, 2026-11-27).
                  0.05 for an untied (input-only) embedding. With optimizer=adamw too: the gpt2-adamw baseline at
                  1e-3 for the rest is stronger with its embedding at 0.05 than at 1e-3 (10-minute held-out bpb
                  1.749 vs 1.839, docs/LOG.md 2026-11-27), and the side-by-side benchmark keeps the stronger one.
    lr (AdamW)  = 0.004 * sqrt(768 / d_model)      with Muon: the norm gains (nanochat's head rate, width-scaled);
                  / 4 with optimizer=adamw          AdamW on everything needs a lower rate (0.002 at depth 3);
                  1e-3 for gpt2-adamw               the baseline's best of {1e-3, 3e-3, 8e-3}
    tokens      = tokens_per_param * N, N = the parameters that multiply (non-embedding + head; the embedding
                  matrix when tied); tokens_per_param = 2 is set by the CPU budget: ~7 min of training at depth 3
                  on 2 cores (Chinchilla's compute-optimal ratio is ~20; ablations and sweeps: docs/LOG.md)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from llmlab.data.loader import TokenWindows
from llmlab.errors import LlmlabError
from llmlab.eval.zip_view import format_zip_view, zip_view
from llmlab.files import atomic_write_json, save_config, to_plain
from llmlab.layout import RunDir
from llmlab.model.bpb import bits_per_byte, token_byte_lengths
from llmlab.model.config import ModelConfig
from llmlab.model.flops import count_params, flops_per_token
from llmlab.model.folder import save_model_folder
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.bpe import Tokenizer
from llmlab.train.distributed import Dist, barrier, distributed, wrap_ddp
from llmlab.train.loop import LoopSettings, TrainingRun, is_finished
from llmlab.train.optim import build_optimizer
from llmlab.train.settings import Bookkeeping, Schedule, settings_fingerprint

log = logging.getLogger(__name__)


# Training presets that are more than a model preset: the baseline pairs nanoGPT's model with its optimizer.
TRAINING_PRESETS = {"gpt2-adamw": {"model": "gpt2", "optimizer": "adamw", "lr": 1e-3}}


@dataclass
class PretrainBookkeeping(Bookkeeping):
    """Bookkeeping of pre-training (and that of every stage).

    Args:
        eval_tokens: held-out tokens per periodic evaluation.
        compile: torch.compile the model; None: on with CUDA (1.54x the tokens/s at depth 12 on an H100 for a 39 s
            warm-up), off on the CPU (1.2x at depth 3 for ~30 s of warm-up: worth it only for long runs).
    """

    eval_tokens: int = 65_536
    compile: bool | None = None


@dataclass
class PretrainConfig:
    """Pre-training settings; None means "derived from depth" (see the module docstring).

    Args:
        depth: the size dial: number of layers; width = 64 * depth (ModelConfig.from_depth).
        preset: the recipe: default (RoPE, RMSNorm, QK-norm, SwiGLU, tied head, no softcap; Muon), gpt2-adamw (the
            nanoGPT baseline: learned positions, LayerNorm, GELU, tied head; AdamW), or a model preset of
            ModelConfig (gpt2, llama) trained with Muon.
        seq_len: context length in tokens (the RoPE / position table length).
        model_overrides: any ModelConfig field, e.g. {"d_model": 192, "qk_norm": false}.
        optimizer: muon (Muon on block matrices, AdamW on the rest) or adamw (AdamW on everything); None: the
            preset's (adamw for gpt2-adamw, else muon).
        batch_size: sequences per optimizer step, over all processes.
        micro_batch_size: sequences per forward/backward on each process; gradient accumulation makes up the rest.
        lr: AdamW learning rate (head, gains; everything with optimizer=adamw).
        embed_lr: AdamW learning rate of the embedding table; None: derived from the width (see the module
            docstring).
        muon_lr: Muon learning rate for the block matrices.
        weight_decay: decoupled weight decay on matrices.
        tokens: training tokens; None: tokens_per_param times (non-embedding + head) parameters. The run trains
            whole steps: tokens // (batch_size x seq_len) of them.
        tokens_per_param: the token budget's ratio when `tokens` is None (Chinchilla is ~20).
        schedule: the learning-rate schedule (warmup, warmdown).
        grad_clip: clip the global gradient norm to this (0: off).
        seed: seeds initialisation and data order.
        bookkeeping: logging, evaluation, checkpoints, device, compile (not part of the resume fingerprint).
    """

    depth: int = 3
    preset: str = "default"
    seq_len: int = 256
    model_overrides: dict = field(default_factory=dict)
    optimizer: str | None = None
    batch_size: int | None = None
    micro_batch_size: int | None = None
    lr: float | None = None
    embed_lr: float | None = None
    muon_lr: float = 0.02
    weight_decay: float = 0.0
    tokens: int | None = None
    tokens_per_param: float = 2.0
    schedule: Schedule = field(default_factory=lambda: Schedule(warmup_steps=20, warmdown_frac=0.4))
    grad_clip: float = 0.0
    seed: int = 0
    bookkeeping: PretrainBookkeeping = field(default_factory=PretrainBookkeeping)

    def model_config(self, vocab_size: int) -> ModelConfig:
        """The model for a tokenizer of `vocab_size` tokens; overrides may enlarge the vocabulary or position table."""
        sizes = {"vocab_size": vocab_size, "seq_len": self.seq_len, **self.model_overrides}
        cfg = ModelConfig.preset(TRAINING_PRESETS.get(self.preset, {}).get("model", self.preset), self.depth, **sizes)
        cfg.check_vocab(vocab_size)
        if cfg.seq_len < self.seq_len:
            raise LlmlabError(f"seq_len {self.seq_len} is beyond the model's {cfg.pos_embedding} table of {cfg.seq_len} positions")
        return cfg

    def resolved(self, model_cfg: ModelConfig) -> PretrainRun:
        """Every derived quantity of the run, filled in (what `llmlab plan` estimates and the trainer runs)."""
        if self.tokens is not None and self.tokens <= 0:
            raise LlmlabError(f"tokens must be a positive number, got {self.tokens}")
        params = count_params(model_cfg)
        scaling_params = params["non_embedding"] + params["head"] + (params["embedding"] if model_cfg.tie_embeddings else 0)
        batch_size = self.batch_size or 16 * max(1, self.depth // 4)
        budget = self.tokens or int(self.tokens_per_param * scaling_params)
        preset = TRAINING_PRESETS.get(self.preset, {})
        optimizer = self.optimizer or preset.get("optimizer", "muon")
        derived_lr = 0.004 * math.sqrt(768 / model_cfg.d_model) / (1 if optimizer == "muon" else 4)
        derived_embed_lr = 0.05 * min(1.0, 192 / model_cfg.d_model) if model_cfg.tie_embeddings else 0.05
        steps = max(1, budget // (batch_size * self.seq_len))
        flops_tok = flops_per_token(model_cfg, self.seq_len)
        return PretrainRun(batch_size=batch_size, lr=self.lr or preset.get("lr", derived_lr),
                           embed_lr=self.embed_lr or derived_embed_lr, optimizer=optimizer, steps=steps,
                           tokens=steps * batch_size * self.seq_len, params=params, flops_per_token=flops_tok)


@dataclass(frozen=True)
class PretrainRun:
    """The quantities a PretrainConfig derives for one model: the run the trainer does, step for step."""

    batch_size: int  # sequences per optimizer step, over all processes
    lr: float
    embed_lr: float
    optimizer: str
    steps: int
    tokens: int  # tokens trained on: steps x batch_size x seq_len
    params: dict  # llmlab.model.flops.count_params
    flops_per_token: float  # training FLOPs per token (llmlab.model.flops, attention included)

    @property
    def flops(self) -> float:
        """Training FLOPs of the whole run."""
        return self.flops_per_token * self.tokens


def _check_memory(model_cfg: ModelConfig, micro_batch: int, device: torch.device) -> None:
    """Refuse a micro-batch whose activations would not fit, before any work (a rough upper estimate)."""
    import psutil

    c, t, layers = model_cfg.d_model, model_cfg.seq_len, model_cfg.depth
    per_token = 4 * (layers * (16 * c + 3 * model_cfg.mlp_hidden) + 4 * model_cfg.vocab_size)  # bytes kept for backward
    need = micro_batch * t * per_token
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else psutil.virtual_memory().available
    if need > 0.8 * free:
        raise LlmlabError(
            f"a micro-batch of {micro_batch} x {t} tokens needs ~{need / 2**30:.1f} GiB of activations, but only "
            f"{free / 2**30:.1f} GiB is free on {device}; lower --micro_batch_size (gradient accumulation keeps the batch)"
        )


def pretrain(run_dir: Path, cfg: PretrainConfig, resume: bool = False) -> dict:
    """Train; returns a summary dict (final losses, timing). Under torchrun every process calls this."""
    with distributed(cfg.bookkeeping.device) as d:
        return _pretrain(RunDir(run_dir), cfg, resume, d)


def _pretrain(run: RunDir, cfg: PretrainConfig, resume: bool, d: Dist) -> dict:
    work, model_dir, book = run.stage("pretrain"), run.model_of("pretrain"), cfg.bookkeeping
    tok = Tokenizer.load(run.tokenizer)
    model_cfg = cfg.model_config(tok.vocab_size)
    plan = cfg.resolved(model_cfg)
    batch, steps = plan.batch_size, plan.steps
    if batch % d.world:
        raise LlmlabError(f"batch_size {batch} is not divisible by the {d.world} processes")
    micro = cfg.micro_batch_size or batch // d.world
    if (batch // d.world) % micro:
        raise LlmlabError(f"micro_batch_size {micro} does not divide the per-process batch {batch // d.world}")
    accum = batch // d.world // micro
    _check_memory(model_cfg, micro, d.device)
    train_data = TokenWindows(run.tokens, "train", cfg.seq_len, tok.sha256)
    val_data = TokenWindows(run.tokens, "val", cfg.seq_len, tok.sha256)

    model = Transformer(model_cfg, seed=cfg.seed).to(d.device)
    optimizer = build_optimizer(model, plan.optimizer, lr=plan.lr, weight_decay=cfg.weight_decay,
                                muon_lr=cfg.muon_lr, embed_lr=plan.embed_lr)
    settings_fp = settings_fingerprint(cfg, global_batch=batch, tokenizer=tok.sha256)
    training = TrainingRun("pretrain", work, model, optimizer, d, settings_fp, resume)
    if training.start_step == steps and is_finished(model_dir, settings_fp):
        print(f"pretrain: {model_dir} is already trained with these settings; nothing to do")
        return {"steps": steps, "train_seconds": training.train_time, "skipped": True}
    if d.is_main:
        save_config(work.config, {**to_plain(cfg), "resolved": {**to_plain(plan), "flops": plan.flops},
                                  "model": model_cfg.to_dict(), "world": d.world})

    use_compile = book.compile if book.compile is not None else d.device.type == "cuda"
    train_model = wrap_ddp(torch.compile(model) if use_compile else model, d)

    from llmlab.hardware import peak_flops

    peak, peak_source = peak_flops(d.device)
    byte_lengths = token_byte_lengths(tok)
    metrics = training.open_metrics(book.tensorboard)
    if d.is_main:
        p = plan.params
        print(f"pretrain: {p['total']:,} params ({p['non_embedding']:,} non-embedding), {steps} steps of {batch} x "
              f"{cfg.seq_len} tokens = {plan.tokens:,} tokens ({train_data.n_windows * cfg.seq_len:,} "
              f"in the train split), {d.world} process(es) on {d.device}; peak {peak / 1e9:,.0f} GFLOP/s ({peak_source})")

    def evaluate(n_tokens: int) -> float:
        stream = np.concatenate([np.asarray(s) for s in val_data.shards])[: n_tokens + 1]
        return bits_per_byte(model, stream.astype(np.int64), byte_lengths, cfg.seq_len, device=d.device)["bpb"]

    def micro_loss(step: int, micro: int) -> torch.Tensor:
        x, y = train_data.batch(step, batch, d.rank * accum + micro, d.world * accum, cfg.seed)
        return train_model(x.to(d.device), y.to(d.device), return_logits=False)[1]

    settings = LoopSettings(steps, accum, batch * cfg.seq_len, plan.flops_per_token, peak, cfg.schedule, book,
                            cfg.grad_clip)
    loss_value = training.train(settings, micro_loss, lambda: {"val_bpb": evaluate(book.eval_tokens)}, train_model)
    train_time = training.train_time
    summary = {"steps": steps, "final_loss": loss_value, "train_seconds": train_time}
    if d.is_main:
        summary["val_bpb"] = evaluate(book.eval_tokens)
        metrics.write({"step": steps, "val_bpb": summary["val_bpb"], "train_time": train_time})
        save_model_folder(model_dir, model, run.tokenizer,
                          {"stage": "base", "steps": steps, "tokens": plan.tokens, "val_bpb": summary["val_bpb"],
                           "settings_fingerprint": settings_fp})
        view = zip_view(model, tok, run.root, byte_lengths, d.device)
        atomic_write_json(work.zip_view, view)
        print(format_zip_view(view))
        summary["zip_view"] = view
    barrier(d)
    return summary
