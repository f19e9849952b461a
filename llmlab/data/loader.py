"""Training batches from token shards: fixed windows visited in a seeded order that is a pure function of the step.

The shards of one split are cut into windows of seq_len + 1 tokens (input = window[:-1], target = window[1:]); a
window never crosses a shard boundary. Epoch e visits all windows in the permutation drawn from (seed, e). Global
batch `step` is the next `batch_size` windows of that endless sequence, and rank r of `world` processes takes its
contiguous slice of it, so:
  * resuming needs only the step number (no loader state to save, nothing to fast-forward), and
  * the global batch is identical for any number of processes: 1 process and 2 x half-batches see the same data.

    windows = TokenWindows(manifest_dir, "train", seq_len=256, tokenizer_hash=tok.sha256)
    x, y = windows.batch(step, batch_size=16, rank=0, world=1, seed=0)   # (B, T) int64 tensors
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from llmlab.data.shards import open_shard
from llmlab.errors import LlmlabError
from llmlab.files import read_json


class TokenWindows:
    def __init__(self, tokens_dir: Path, split: str, seq_len: int, tokenizer_hash: str | None = None):
        tokens_dir = Path(tokens_dir)
        manifest_path = tokens_dir / "manifest.json"
        if not manifest_path.exists():
            raise LlmlabError(f"{manifest_path}: not found; run `llmlab data prepare` first")
        manifest = read_json(manifest_path)
        if split not in manifest["splits"]:
            raise LlmlabError(f"{manifest_path}: no split {split!r}")
        self.seq_len = seq_len
        self.shards = [open_shard(tokens_dir / s["file"], tokenizer_hash) for s in manifest["splits"][split]["shards"]]
        counts = np.array([max(0, (len(s) - 1) // seq_len) for s in self.shards], dtype=np.int64)
        self._first_window = np.concatenate([[0], np.cumsum(counts)])  # window index where each shard starts
        self.n_windows = int(counts.sum())
        if self.n_windows == 0:
            raise LlmlabError(
                f"{tokens_dir}: the {split} split has {sum(len(s) for s in self.shards)} tokens, fewer than one "
                f"window of seq_len + 1 = {seq_len + 1}"
            )

    def window(self, index: int) -> np.ndarray:
        """Window `index` (0 <= index < n_windows): (seq_len + 1,) tokens."""
        shard = int(np.searchsorted(self._first_window, index, side="right")) - 1
        start = (index - self._first_window[shard]) * self.seq_len
        return np.asarray(self.shards[shard][start : start + self.seq_len + 1])

    @lru_cache(maxsize=2)
    def _order(self, seed: int, epoch: int) -> np.ndarray:
        return np.random.default_rng([seed, epoch]).permutation(self.n_windows)

    def batch_indices(self, step: int, batch_size: int, rank: int = 0, world: int = 1, seed: int = 0) -> list[int]:
        if batch_size % world:
            raise LlmlabError(f"batch size {batch_size} is not divisible by the {world} processes")
        local = batch_size // world
        positions = range(step * batch_size + rank * local, step * batch_size + (rank + 1) * local)
        return [int(self._order(seed, p // self.n_windows)[p % self.n_windows]) for p in positions]

    def batch(self, step: int, batch_size: int, rank: int = 0, world: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of global batch `step`: inputs and targets, each (batch_size // world, seq_len) int64."""
        rows = np.stack([self.window(i) for i in self.batch_indices(step, batch_size, rank, world, seed)]).astype(np.int64)
        data = torch.from_numpy(rows)
        return data[:, :-1], data[:, 1:]

    def sequential(self, n_windows: int, batch_size: int):
        """The first `n_windows` windows in order (for held-out evaluation), in batches of inputs and targets."""
        n = min(n_windows, self.n_windows)
        for start in range(0, n, batch_size):
            rows = np.stack([self.window(i) for i in range(start, min(n, start + batch_size))]).astype(np.int64)
            data = torch.from_numpy(rows)
            yield data[:, :-1], data[:, 1:]
