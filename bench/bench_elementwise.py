"""The hand-written RMSNorm / RoPE layers (llmlab.model.elementwise) against PyTorch's composite ops, side by side.

    .venv/bin/python bench/bench_elementwise.py            # CPU, the default model (depth 3), 14 alternating steps

Two copies of the default model with the same weights, one step each in turn (the order flips every round, so drift
in the machine's speed hits both alike): forward + backward + optimizer step on random tokens, as bench_throughput.py
times it. Prints the loss and largest gradient difference of the two paths, then the median step time of each.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from llmlab.model import elementwise
from llmlab.model.config import ModelConfig
from llmlab.model.transformer import Transformer
from llmlab.train.optim import build_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--seq_len", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=14, help="steps of each path (the first 2 are not timed)")
    args = parser.parse_args()
    cfg = ModelConfig.preset("default", args.depth, vocab_size=4096, seq_len=args.seq_len)
    x = torch.randint(0, cfg.vocab_size, (args.batch_size, args.seq_len))
    y = torch.randint(0, cfg.vocab_size, (args.batch_size, args.seq_len))
    models = [Transformer(cfg), Transformer(cfg)]  # [composite ops, hand-written]
    optimizers = [build_optimizer(m, "muon", lr=0.004, weight_decay=0.0, embed_lr=0.05) for m in models]
    hand_written = elementwise._composite

    def step(path: int, update: bool = True) -> tuple[float, float]:
        elementwise._composite = hand_written if path else (lambda x: True)
        start = time.perf_counter()
        _, loss = models[path](x, y, return_logits=False)
        loss.backward()
        if update:
            optimizers[path].step()
            optimizers[path].zero_grad(set_to_none=True)
        return time.perf_counter() - start, loss.item()

    losses = [step(path, update=False)[1] for path in (0, 1)]
    grad_diff = max((a.grad - b.grad).abs().max().item() for a, b in zip(*(m.parameters() for m in models)))
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    times: list[list[float]] = [[], []]
    for i in range(args.rounds):
        for path in (0, 1) if i % 2 else (1, 0):
            times[path].append(step(path)[0])
    composite, ours = (statistics.median(t[2:]) * 1000 for t in times)
    print(f"depth {args.depth}, batch {args.batch_size} x {args.seq_len}: loss {losses[0]:.6f} (composite) vs "
          f"{losses[1]:.6f} (hand-written), largest gradient difference {grad_diff:.1e}")
    print(f"median step: composite {composite:.1f} ms, hand-written {ours:.1f} ms, ratio {ours / composite:.3f}")


if __name__ == "__main__":
    main()
