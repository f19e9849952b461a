"""Training-step throughput and MFU of the default recipe at a given size, on synthetic tokens: the prepared check
to run when a GPU is available (and a quick CPU profile otherwise).

    .venv/bin/python bench/bench_throughput.py                                   # CPU, depth 3, fp32, eager
    python bench/bench_throughput.py --device cuda --depth 12 --seq_len 1024 --batch_size 32 --compile
    python bench/bench_throughput.py --device cuda --depth 20 --seq_len 2048 --batch_size 16 --compile

Forward + backward + optimizer step (Muon + AdamW) on random token ids; bf16 autocast on CUDA, fp32 on the CPU.
Prints the device name, median tokens/s over the timed steps and MFU = tokens/s x FLOPs per token / peak, where the
peak is the datasheet's dense bf16 figure for a known GPU (llmlab.hardware) or the measured fp32 GEMM peak on CPU;
then where a step goes (forward, backward, optimizer), from as many more steps timed with a synchronisation between
the phases (kept apart from the figure above: on a GPU the syncs stop the CPU from queueing work ahead).
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch

from llmlab.hardware import peak_flops
from llmlab.model.config import ModelConfig
from llmlab.model.flops import count_params, flops_per_token
from llmlab.model.transformer import Transformer
from llmlab.train.optim import build_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--vocab_size", type=int, default=4096)
    parser.add_argument("--seq_len", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after 3 warm-up steps)")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    cfg = ModelConfig.preset("default", args.depth, vocab_size=args.vocab_size, seq_len=args.seq_len)
    model = Transformer(cfg).to(device)
    optimizer = build_optimizer(model, "muon", lr=0.004, weight_decay=0.0, embed_lr=0.05)
    step_model = torch.compile(model) if args.compile else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    peak, source = peak_flops(device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    x = torch.randint(0, cfg.vocab_size, (args.batch_size, args.seq_len), device=device)
    y = torch.randint(0, cfg.vocab_size, (args.batch_size, args.seq_len), device=device)

    def sync() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def step(split: bool = False) -> list[float]:
        """Seconds of the whole step, or of its forward, backward and optimizer phases when `split`."""
        marks = [sync()]
        with autocast:
            _, loss = step_model(x, y, return_logits=False)  # as the trainers call it
        marks += [sync()] if split else []
        loss.backward()
        marks += [sync()] if split else []
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        marks.append(sync())
        return [b - a for a, b in zip(marks, marks[1:])]

    warmup = sum(step()[0] for _ in range(3))
    seconds = statistics.median(step()[0] for _ in range(args.steps))
    phases = [statistics.median(column) for column in zip(*(step(split=True) for _ in range(args.steps)))]
    tok_s = args.batch_size * args.seq_len / seconds
    mfu = tok_s * flops_per_token(cfg, args.seq_len) / peak
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}; depth {args.depth}, d_model {cfg.d_model}, {count_params(cfg)['total']:,} params, "
          f"batch {args.batch_size} x {args.seq_len}, compile {args.compile}")
    print(f"warm-up {warmup:.1f} s; median step {seconds * 1000:.1f} ms; {tok_s:,.0f} tokens/s; "
          f"MFU {mfu:.1%} of {peak / 1e12:.2f} TFLOP/s ({source})")
    names = ("forward", "backward", "optimizer")
    print("split step: " + ", ".join(f"{name} {t * 1000:.1f} ms" for name, t in zip(names, phases)))


if __name__ == "__main__":
    main()
