"""The floor under a default training step on this machine: its matrix products, attention and Newton-Schulz alone.

    .venv/bin/python bench/bench_step_floor.py      # CPU, the default model (depth 3, batch 16 x 256)

Times, side by side in one process (alternating, median of the rounds): the whole training step (forward, backward,
Muon + AdamW step, as bench_throughput.py), and the same step's compute-bound parts run back to back with nothing
else: every matmul of the forward and backward passes at the step's shapes (the head in the fused loss's 256-row
chunks), the causal flash attention forward + backward of each layer, and Muon's Newton-Schulz on the block
matrices. No fusion of the remaining elementwise work (norms, RoPE, activations, softmax, residual adds) can make a
step faster than that floor, so MFU against the GEMM probe at the floor is the most any kernel work could reach
without changing the recipe. Prints both times, the MFU at each, and the floor's parts.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from llmlab.hardware import peak_flops
from llmlab.model.config import ModelConfig
from llmlab.model.flops import flops_per_token
from llmlab.model.linear_cross_entropy import CHUNK_ROWS
from llmlab.model.transformer import Transformer
from llmlab.train.optim import build_optimizer, orthogonalise_all


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--seq_len", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=12, help="rounds of each (the first 2 are not timed)")
    args = parser.parse_args()
    cfg = ModelConfig.preset("default", args.depth, vocab_size=4096, seq_len=args.seq_len)
    B, T, C, V = args.batch_size, args.seq_len, cfg.d_model, cfg.vocab_size
    N = B * T
    model = Transformer(cfg)
    optimizer = build_optimizer(model, "muon", lr=0.004, weight_decay=0.0, embed_lr=0.05)
    idx = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))

    def step() -> None:
        _, loss = model(idx, targets, return_logits=False)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # Each block matrix (out, in) costs three products a step: x @ W.T forward, g @ W and g.T @ x backward.
    weights = [p.detach() for name, p in model.named_parameters() if p.ndim == 2 and name.startswith("blocks.")]
    inputs = {w.shape[1]: torch.randn(N, w.shape[1]) for w in weights}  # activations (N, in)
    grads = {w.shape[0]: torch.randn(N, w.shape[0]) for w in weights}  # output gradients (N, out)
    head = model.embed.weight.detach()  # (V, C)
    rows, logits = torch.randn(CHUNK_ROWS, C), torch.randn(CHUNK_ROWS, V)
    head_grad = torch.zeros_like(head)

    def matmuls() -> None:
        for w in weights:
            x, g = inputs[w.shape[1]], grads[w.shape[0]]
            x @ w.T, g @ w, g.T @ x
        for _ in range(N // CHUNK_ROWS):  # the fused loss: logits, grad_x and grad_w per chunk
            rows @ head.T, logits @ head
            head_grad.addmm_(logits.T, rows)

    q, k, v = (torch.randn(B, T, cfg.n_heads, cfg.head_dim).transpose(1, 2).requires_grad_() for _ in range(3))
    out_grad = torch.randn(B, cfg.n_heads, T, cfg.head_dim)

    def attention() -> None:
        for _ in range(cfg.depth):
            F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(out_grad)

    updates = [torch.randn_like(w) for w in weights]
    parts = {"matmuls": matmuls, "attention": attention, "newton-schulz": lambda: orthogonalise_all(updates)}
    times: dict[str, list[float]] = {"step": [], **{name: [] for name in parts}}
    for _ in range(args.rounds):
        times["step"].append(timed(step))
        for name, fn in parts.items():
            times[name].append(timed(fn))
    median = {name: statistics.median(t[2:]) for name, t in times.items()}
    floor = sum(median[name] for name in parts)
    peak, _ = peak_flops("cpu")
    flops = N * flops_per_token(cfg, T)
    print(f"depth {args.depth}, batch {B} x {T}; GEMM probe {peak / 1e9:.0f} GFLOP/s")
    print(f"whole step {median['step'] * 1000:.1f} ms: MFU {flops / median['step'] / peak:.1%}")
    print(f"floor {floor * 1000:.1f} ms: MFU {flops / floor / peak:.1%} (" +
          ", ".join(f"{name} {median[name] * 1000:.1f} ms" for name in parts) + ")")


if __name__ == "__main__":
    main()
