"""Bits per byte: a model's code length for text, comparable across tokenizers and with classical compressors.

For a token stream (documents, each starting with BOS), every token after the first is predicted from at most
seq_len previous tokens (non-overlapping windows); bits = sum of -log2 p(token) over tokens that carry bytes
(special tokens like BOS carry none and are left out, as nanochat does), bytes = the UTF-8 bytes those tokens
decode to. So bpb = bits / bytes, and bytes equals the byte length of the text exactly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def token_byte_lengths(tok) -> np.ndarray:
    """(vocab,) int64: the UTF-8 byte length of each token id of `tok`, 0 for special tokens (they carry no text)."""
    specials = set(tok.special_ids.values())
    return np.array([0 if i in specials else len(tok.token_bytes(i)) for i in range(tok.vocab_size)], dtype=np.int64)


@torch.inference_mode()
def bits_per_byte(model, tokens: np.ndarray, token_bytes: np.ndarray, seq_len: int, batch_size: int = 8,
                  device: torch.device | str = "cpu") -> dict:
    """{"bpb", "bits", "bytes", "tokens"} of `model` on the 1-D token stream `tokens`.

    token_bytes: (vocab,) int array, the UTF-8 byte length of each token id (0 for special tokens).
    """
    model.eval()
    n_windows = max(0, (len(tokens) - 1 + seq_len - 1) // seq_len)
    total_nats, total_bytes, counted = 0.0, 0, 0
    lengths = torch.as_tensor(token_bytes, dtype=torch.int64, device=device)
    for first in range(0, n_windows, batch_size):
        rows = []
        for w in range(first, min(n_windows, first + batch_size)):
            window = tokens[w * seq_len : w * seq_len + seq_len + 1]
            pad = seq_len + 1 - len(window)
            rows.append(np.concatenate([window, np.full(pad, -1)]) if pad else window)
        data = torch.as_tensor(np.stack(rows).astype(np.int64), device=device)
        x, y = data[:, :-1].clamp_min(0), data[:, 1:]  # padded inputs are never attended by counted targets
        logits, _ = model(x)
        nats = F.cross_entropy(logits.flatten(0, 1), y.reshape(-1).clamp_min(0), reduction="none")
        target_bytes = torch.where(y.reshape(-1) >= 0, lengths[y.reshape(-1).clamp_min(0)], 0)
        keep = target_bytes > 0
        total_nats += float(nats[keep].sum())
        total_bytes += int(target_bytes.sum())
        counted += int(keep.sum())
    bits = total_nats / math.log(2)
    return {"bpb": bits / max(1, total_bytes), "bits": bits, "bytes": total_bytes, "tokens": counted}
