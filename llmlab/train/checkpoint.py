"""Training checkpoints: everything needed to continue a run exactly, written atomically, the last N kept.

    <ckpt_dir>/step_000120/
        model.safetensors   weights (llmlab names, float32)
        optimizer.pt        optimizer state (torch.save)
        trainer.pt          step, RNG states (python, numpy, torch, cuda), data-loader position, config fingerprint
        meta.json           sha256 of the three files above, written last

A checkpoint is written into a temporary folder and renamed, so a folder named step_* is complete; a checksum
mismatch (truncated copy, bit rot) is still caught on load, and `latest_intact` falls back to the newest checkpoint
that verifies, saying which ones it skipped and why.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from llmlab.errors import LlmlabError
from llmlab.files import atomic_dir, file_sha256

log = logging.getLogger(__name__)

FILES = ("model.safetensors", "optimizer.pt", "trainer.pt")


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(ckpt_dir: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    trainer_state: dict, keep_last: int) -> Path:
    from safetensors.torch import save_file

    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / f"step_{step:06d}"
    with atomic_dir(final) as tmp:
        weights = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(weights, tmp / "model.safetensors")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save({**trainer_state, "step": step, "rng": rng_state()}, tmp / "trainer.pt")
        meta = {"step": step, "sha256": {name: file_sha256(tmp / name) for name in FILES}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    for old in list_checkpoints(ckpt_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Checkpoint folders, oldest first."""
    if not Path(ckpt_dir).exists():
        return []
    return sorted(p for p in Path(ckpt_dir).iterdir() if p.is_dir() and p.name.startswith("step_"))


def verify(path: Path) -> None:
    """Raise LlmlabError naming what is wrong if the checkpoint is incomplete or corrupt."""
    meta_path = path / "meta.json"
    if not meta_path.exists():
        raise LlmlabError(f"{path}: incomplete checkpoint (no meta.json)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise LlmlabError(f"{meta_path}: corrupt ({e.msg})") from e
    for name in FILES:
        if not (path / name).exists():
            raise LlmlabError(f"{path / name}: missing")
        if file_sha256(path / name) != meta["sha256"].get(name):
            raise LlmlabError(f"{path / name}: checksum mismatch (truncated or corrupt)")


def latest_intact(ckpt_dir: Path) -> Path | None:
    """The newest checkpoint that verifies; logs each newer one skipped and why."""
    for path in reversed(list_checkpoints(ckpt_dir)):
        try:
            verify(path)
            return path
        except LlmlabError as e:
            log.warning("skipping checkpoint: %s", e)
    return None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict:
    """Load weights (and optimizer state) into the given objects, restore RNG states; return the trainer state."""
    from safetensors.torch import load_file

    path = Path(path)
    verify(path)
    model.load_state_dict(load_file(path / "model.safetensors"))
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    state = torch.load(path / "trainer.pt", weights_only=False)
    set_rng_state(state["rng"])
    return state
