"""What the fine-tuning stages (sft, prefs) share: their common settings, where their data comes from, LoRA and the
optimizer, and how the tuned model is saved. Each stage subclasses `FinetuneConfig` with its own defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llmlab.data.default_data import default_data_files
from llmlab.errors import LlmlabError
from llmlab.files import file_sha256
from llmlab.model.folder import save_model_folder
from llmlab.model.loading import load_model
from llmlab.model.lora import add_lora, merge_lora
from llmlab.train.distributed import Dist, main_first
from llmlab.train.optim import build_optimizer
from llmlab.train.settings import Bookkeeping, Schedule


@dataclass
class FinetuneConfig:
    """Settings every fine-tuning stage has.

    Args:
        train_files: JSONL files to train on; empty: the run's default fine-tuning data.
        val_files: held-out JSONL files; empty: the default data's val split (none for your own train files).
        epochs: passes over the training examples.
        batch_size: examples per optimizer step, over all processes.
        optimizer: muon or adamw (LoRA always uses adamw).
        lora_rank: 0 for full fine-tuning; else train only rank-r LoRA adapters of the block matrices (merged
            into the weights when saving).
        lora_alpha: LoRA scale numerator: updates are scaled by lora_alpha / lora_rank.
        lr: AdamW learning rate (gains; everything with adamw).
        embed_lr: AdamW learning rate of the embedding matrix (with muon).
        muon_lr: Muon learning rate of the block matrices.
        weight_decay: decoupled weight decay.
        schedule: the learning-rate schedule (warmup, warmdown).
        grad_clip: clip the gradient norm (0: off).
        seed: seeds the order of the examples.
        bookkeeping: logging, evaluation, checkpoints, device (not part of the resume fingerprint).
    """

    train_files: list[Path] = field(default_factory=list)
    val_files: list[Path] = field(default_factory=list)
    epochs: float = 1.0
    batch_size: int = 16
    optimizer: str = "muon"
    lora_rank: int = 0
    lora_alpha: float = 16.0
    lr: float = 0.002
    embed_lr: float = 0.01
    muon_lr: float = 0.005
    weight_decay: float = 0.0
    schedule: Schedule = field(default_factory=lambda: Schedule(warmup_steps=10, warmdown_frac=0.5))
    grad_clip: float = 1.0
    seed: int = 0
    bookkeeping: Bookkeeping = field(default_factory=Bookkeeping)


def data_files(run_dir: Path, cfg: FinetuneConfig, d: Dist, kind: str) -> dict[str, list[Path]]:
    """{"train": [...], "val": [...]}: the configured files, or the run's default `kind` ("sft" or "prefs") data."""
    if cfg.train_files:
        return {"train": list(cfg.train_files), "val": list(cfg.val_files)}
    defaults = main_first(d, lambda: default_data_files(run_dir))
    return {"train": [defaults[f"{kind}_train"]], "val": [defaults[f"{kind}_val"]]}


def load_start(spec: str | Path, device) -> tuple:
    """(model, tokenizer, sha256 of its weights file) of the model a stage starts from: an llmlab model folder, a
    Hugging Face folder, a GGUF file, hf:org/name or smollm2 (see llmlab.model.loading). The hash identifies the
    start weights in the run's settings fingerprint."""
    model, tok, info = load_model(spec, device)
    return model, tok, file_sha256(info["weights"])


def check_batch(cfg: FinetuneConfig, d: Dist) -> None:
    if cfg.batch_size % d.world:
        raise LlmlabError(f"batch_size {cfg.batch_size} is not divisible by the {d.world} processes")


def trainable_setup(model, cfg: FinetuneConfig):
    """Add LoRA adapters if asked, and return the optimizer over what is trainable."""
    if cfg.lora_rank:
        add_lora(model, cfg.lora_rank, cfg.lora_alpha)
    return build_optimizer(model, "adamw" if cfg.lora_rank else cfg.optimizer, lr=cfg.lr,
                           weight_decay=cfg.weight_decay, muon_lr=cfg.muon_lr, embed_lr=cfg.embed_lr)


def save_tuned(folder: Path, model, cfg: FinetuneConfig, tok, meta: dict) -> None:
    """Merge LoRA adapters (if any) into the weights and save the model folder."""
    if cfg.lora_rank:
        merge_lora(model)
    save_model_folder(folder, model, tok.folder, meta)
