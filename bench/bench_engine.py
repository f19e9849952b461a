"""Inference speed of llmlab's engine against Hugging Face `transformers` generate() on the same weights, same
machine, same run: prefill tokens/s and greedy decode tokens/s at batch 1 and 8.

    .venv/bin/python bench/bench_engine.py                      # SmolLM2-135M (the packaged GGUF, dequantised)
    .venv/bin/python bench/bench_engine.py --model runs/x/base  # any model spec llmlab.model.loading takes

Both sides get the very same float32 weights: the llmlab model is exported with `export_hf` (a rename of its
parameters) and read back by transformers' AutoModelForCausalLM; the script checks their logits agree before timing.

  prefill  one forward pass over a --prompt_len token prompt at batch 1, filling a KV cache, with the logits of the
           last position only (as both generate loops do): prompt tokens / s
  decode   --new_tokens greedy tokens per row after a --decode_prompt_len token prompt, rows x new tokens / s of
           the whole call (prefill included; with the short prompt it is a small part of the time). Every row runs
           to the end: llmlab gets no stop ids, transformers min_new_tokens = max_new_tokens. llmlab's batch of 8
           is 8 samples of one prompt (`num_samples`, one prefill shared), transformers' is 8 copies of it.

Each figure is the median of --repeats timed runs after one warm-up (llmlab and transformers taking turns), with
torch limited to --threads threads; prompts are random token ids (speed does not depend on the text). Tokens/s are
wall-clock; the last column is the ratio of the process CPU time the two spent, a steadier figure on a busy machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from llmlab.engine.generate import generate_ids
from llmlab.model.hf_format import export_hf
from llmlab.model.loading import load_model


def to_transformers(model, tok):
    """The same model as transformers computes it, read back from an HF export of its weights."""
    from transformers import AutoModelForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        export_hf(model, tok, Path(tmp) / "hf")
        return AutoModelForCausalLM.from_pretrained(Path(tmp) / "hf", dtype=torch.float32).eval()


def median_times(fns, repeats: int) -> list[tuple[float, float]]:
    """(median wall seconds, median process CPU seconds) of each function; the functions take turns, so a busy spell
    on the machine hits both sides."""
    for fn in fns:
        fn()  # warm-up: first-call allocations and kernel choices
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, spent in zip(fns, times):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            spent.append((time.perf_counter() - wall, time.process_time() - cpu))
    return [(statistics.median(w for w, _ in spent), statistics.median(c for _, c in spent)) for spent in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="a model spec: smollm2, an llmlab or HF folder, a .gguf")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt_len", type=int, default=128, help="prefill prompt tokens")
    parser.add_argument("--decode_prompt_len", type=int, default=16)
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model, tok, _ = load_model(args.model)
    hf = to_transformers(model, tok)
    vocab = model.cfg.vocab_size
    prompt = torch.randint(0, vocab, (1, args.prompt_len))  # (1, P)
    with torch.inference_mode():
        diff = (model(prompt)[0] - hf(prompt).logits).abs().max().item()
    print(f"model {args.model}: {sum(p.numel() for p in model.parameters()):,} parameters, {args.threads} threads, "
          f"torch {torch.__version__}; max |logit difference| llmlab vs transformers: {diff:.2e}")
    if diff > 1e-2:
        raise SystemExit("the two models disagree: the comparison would not be on the same computation")

    print(f"\n{'tokens/s (median of ' + str(args.repeats) + ')':<34} {'llmlab':>8} {'transformers':>13} {'ratio':>6} "
          f"{'CPU-time ratio':>15}", flush=True)

    def report(what: str, tokens: int, ours: tuple[float, float], theirs: tuple[float, float]) -> None:
        """One row of the table, printed as soon as measured: tokens/s from wall times, and the CPU-time ratio."""
        (wall, cpu), (hf_wall, hf_cpu) = ours, theirs
        ratios = f"{hf_wall / wall:>5.2f}x {hf_cpu / cpu:>14.2f}x"
        print(f"{what:<34} {tokens / wall:>8.1f} {tokens / hf_wall:>13.1f} {ratios}", flush=True)

    @torch.inference_mode()
    def prefill_llmlab() -> None:
        model(prompt, kv_cache=model.make_kv_cache(1, max_len=args.prompt_len), last_only=True)

    @torch.inference_mode()
    def prefill_hf() -> None:
        hf(prompt, use_cache=True, logits_to_keep=1)

    report(f"prefill {args.prompt_len} tokens, batch 1", args.prompt_len,
           *median_times([prefill_llmlab, prefill_hf], args.repeats))

    short = prompt[0, : args.decode_prompt_len].tolist()
    n = args.new_tokens
    for batch in args.batch_sizes:
        def decode_llmlab() -> None:
            out = generate_ids(model, short, n, temperature=0.0, num_samples=batch)
            assert all(len(row) == n for row in out)

        def decode_hf() -> None:
            ids = torch.tensor([short] * batch)  # (batch, p)
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                              min_new_tokens=n, pad_token_id=0)
            assert out.shape == (batch, len(short) + n)

        times = median_times([decode_llmlab, decode_hf], args.repeats)
        report(f"decode {n} new tokens, batch {batch}", batch * n, *times)


if __name__ == "__main__":
    main()
