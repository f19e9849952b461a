"""Inference speed of llmlab's engine beside llama.cpp and Hugging Face `transformers` on the same weights, same
machine, one interleaved run: prefill tokens/s, greedy decode tokens/s at batch 1, batched decode, and the memory
each weight format takes.

    .venv/bin/python bench/bench_engine.py                      # SmolLM2-135M (the packaged GGUF, dequantised)
    .venv/bin/python bench/bench_engine.py --model runs/x/base  # any model spec llmlab.model.loading takes

Backends (each row of the table; the llama.cpp ones only when llama-cpp-python, the `gguf-check` extra, is installed):
  llmlab fp32        llmlab's engine on float32 weights
  llmlab int8        the same with int8 weight-only matrices (`load_model(..., quantize="int8")`)
  transformers fp32  AutoModelForCausalLM on llmlab's HF export of the same weights (a rename of the parameters)
  llama.cpp F32      llama-cpp-python on llmlab's GGUF export of the same weights, in F32
  llama.cpp Q8_0     that GGUF quantised to Q8_0 by llama.cpp itself (llama_model_quantize)
Before timing, the script checks that transformers' logits and llama.cpp's greedy tokens agree with llmlab's, and
prints int8's greedy agreement and held-out bits per byte (perplexity) against fp32 on the validation Wikipedia
articles of a prepared run (--text_run, first --text_bytes bytes).

  prefill  one forward pass over a --prompt_len token prompt at batch 1, filling a KV cache: prompt tokens / s
  decode   --new_tokens greedy tokens after a --decode_prompt_len token prompt, whole call (prefill included; with
           the short prompt it is a small part of the time); every row runs to the end (no stop ids)
  batched  --streams concurrent greedy streams of --new_tokens through llmlab's continuous-batching engine
           (complete_all), total tokens / s; llama-cpp-python's Python API decodes one stream at a time
  memory   bytes of the weights as each backend holds them (llmlab: its parameters and int8 buffers; llama.cpp:
           the GGUF's tensor data, which it maps; transformers: its parameters)

Each figure is the median of --repeats timed runs after one warm-up, the backends taking turns (a busy spell on the
machine hits them all), with --threads threads for torch and llama.cpp alike; prompts are random token ids.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from llmlab.engine.batching import Request, complete_all
from llmlab.engine.generate import generate_ids
from llmlab.eval.zip_view import heldout_wiki_texts
from llmlab.model.bpb import bits_per_byte, token_byte_lengths
from llmlab.model.gguf_format import write_gguf
from llmlab.model.hf_format import export_hf
from llmlab.model.loading import load_model
from llmlab.model.quantize import quantize_int8


def to_transformers(model, tok, folder: Path):
    """The same model as transformers computes it, read back from an HF export of its weights."""
    from transformers import AutoModelForCausalLM

    export_hf(model, tok, folder / "hf")
    return AutoModelForCausalLM.from_pretrained(folder / "hf", dtype=torch.float32).eval()


def to_llama_cpp(model, tok, folder: Path, threads: int, n_ctx: int) -> dict:
    """{"F32": Llama, "Q8_0": Llama} on llmlab's F32 GGUF export and llama.cpp's own Q8_0 quantisation of it, with
    each file's size; {} when llama-cpp-python is not installed."""
    try:
        import llama_cpp
    except ImportError:
        print("llama-cpp-python is not installed (pip install '.[gguf-check]'): llama.cpp rows left out")
        return {}
    f32 = folder / "model-f32.gguf"
    write_gguf(model, tok, f32, "f32")
    q8 = folder / "model-q8_0.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.nthread = threads
    if llama_cpp.llama_model_quantize(str(f32).encode(), str(q8).encode(), params) != 0:
        raise SystemExit("llama.cpp failed to quantise the GGUF to Q8_0")
    out = {}
    for kind, path in (("F32", f32), ("Q8_0", q8)):
        if not runs_in_llama_cpp(path):
            print(f"llama.cpp {kind}: decoding crashed in a separate process (this llama-cpp-python build's kernels "
                  "for the format); row left out")
            continue
        out[kind] = (llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                                     n_batch=n_ctx, verbose=False), path.stat().st_size)
    return out


def runs_in_llama_cpp(path: Path) -> bool:
    """Whether llama.cpp decodes a few tokens of `path` without dying: tried in a child process, since a crash in its
    C code (seen here: a general protection fault in libggml-cpu on Q8_0 and Q4_1 files) would end this one."""
    probe = ("import llama_cpp, sys; llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=32, verbose=False); "
             "g = llm.generate([1, 2, 3], temp=0.0, top_k=1); [next(g) for _ in range(4)]")
    return subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, timeout=300).returncode == 0


def median_times(fns: dict, repeats: int) -> dict[str, float]:
    """Median wall seconds of each function, after one warm-up call each; the functions take turns."""
    for fn in fns.values():
        fn()  # warm-up: first-call allocations and kernel choices
    spent = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            spent[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in spent.items()}


def weight_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers (int8 weights and their scales are buffers), RoPE tables aside."""
    tensors = list(module.parameters()) + [b for n, b in module.named_buffers() if "rope" not in n]
    return sum(t.numel() * t.element_size() for t in {id(t): t for t in tensors}.values())


def llama_cpp_greedy(llm, prompt: list[int], n: int) -> list[int]:
    llm.reset()
    out = []
    for token in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
        out.append(token)
        if len(out) == n:
            return out
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2", help="a model spec: smollm2, an llmlab or HF folder, a .gguf")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt_len", type=int, default=128, help="prefill prompt tokens")
    parser.add_argument("--decode_prompt_len", type=int, default=16)
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, default=8, help="concurrent streams of the batched decode")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--text_run", type=Path, default=Path("runs/speedrun"),
                        help="a prepared run directory whose held-out articles score the perplexity")
    parser.add_argument("--text_bytes", type=int, default=20_000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model, tok, _ = load_model(args.model)
    int8 = quantize_int8(load_model(args.model)[0])
    work = Path(tempfile.mkdtemp(prefix="bench_engine_"))
    hf = to_transformers(model, tok, work)
    n_ctx = max(args.prompt_len, args.decode_prompt_len + args.new_tokens) + 8
    cpp = to_llama_cpp(model, tok, work, args.threads, n_ctx)
    prompt = torch.randint(0, model.cfg.vocab_size, (1, args.prompt_len))  # (1, P)
    short = prompt[0, : args.decode_prompt_len].tolist()
    n = args.new_tokens
    with torch.inference_mode():
        diff = (model(prompt)[0] - hf(prompt).logits).abs().max().item()
    reference = generate_ids(model, short, 32, temperature=0.0)[0]
    print(f"model {args.model}: {sum(p.numel() for p in model.parameters()):,} parameters, {args.threads} threads, "
          f"torch {torch.__version__}; max |logit difference| llmlab vs transformers: {diff:.2e}")
    int8_same = generate_ids(int8, short, 32, temperature=0.0)[0] == reference
    print(f"int8 greedy: the same 32 tokens as fp32: {int8_same}")
    if args.text_run.exists():
        text = "".join(heldout_wiki_texts(args.text_run))[: args.text_bytes]
        ids = torch.tensor([tok.bos_id, *tok.encode(text)]).numpy()
        lengths, window = token_byte_lengths(tok), min(512, model.cfg.seq_len)
        fp32, q8 = (bits_per_byte(net, ids, lengths, window)["bpb"] for net in (model, int8))
        print(f"held-out bits per byte ({len(text.encode()):,} bytes of {args.text_run}): fp32 {fp32:.4f}, int8 "
              f"{q8:.4f} ({q8 / fp32 - 1:+.2%}); perplexity ratio int8 / fp32 per token: "
              f"{2 ** ((q8 - fp32) * len(text.encode()) / (len(ids) - 1)):.4f}")
    else:
        print(f"{args.text_run}: no prepared run, so no perplexity comparison (--text_run DIR)")
    for kind, (llm, _) in cpp.items():
        same = llama_cpp_greedy(llm, short, 32) == reference
        print(f"llama.cpp {kind} greedy: the same 32 tokens as llmlab fp32: {same}")
    if diff > 1e-2:
        raise SystemExit("transformers and llmlab disagree: the comparison would not be on the same computation")

    def engine_prefill(net):
        @torch.inference_mode()
        def run() -> None:
            net(prompt, kv_cache=net.make_kv_cache(1, max_len=args.prompt_len), last_only=True)
        return run

    def engine_decode(net):
        def run() -> None:
            assert len(generate_ids(net, short, n, temperature=0.0)[0]) == n
        return run

    def engine_batched(net):
        def run() -> None:
            requests = [Request(short, n, temperature=0.0) for _ in range(args.streams)]
            assert all(len(c.tokens) == n for c in complete_all(net, requests, max_batch=args.streams))
        return run

    @torch.inference_mode()
    def hf_prefill() -> None:
        hf(prompt, use_cache=True, logits_to_keep=1)

    def hf_decode() -> None:
        ids = torch.tensor([short])
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                          min_new_tokens=n, pad_token_id=0)
        assert out.shape == (1, len(short) + n)

    def cpp_prefill(llm):
        def run() -> None:
            llm.reset()
            llm.eval(prompt[0].tolist())
        return run

    def cpp_decode(llm):
        def run() -> None:
            assert len(llama_cpp_greedy(llm, short, n)) == n
        return run

    rows = {"llmlab fp32": model, "llmlab int8": int8, "transformers fp32": hf, **{f"llama.cpp {k}": v for k, v in
                                                                                   cpp.items()}}
    prefill = {"llmlab fp32": engine_prefill(model), "llmlab int8": engine_prefill(int8),
               "transformers fp32": hf_prefill, **{f"llama.cpp {k}": cpp_prefill(llm) for k, (llm, _) in cpp.items()}}
    decode = {"llmlab fp32": engine_decode(model), "llmlab int8": engine_decode(int8),
              "transformers fp32": hf_decode, **{f"llama.cpp {k}": cpp_decode(llm) for k, (llm, _) in cpp.items()}}
    batched = {"llmlab fp32": engine_batched(model), "llmlab int8": engine_batched(int8)}
    t_prefill = median_times(prefill, args.repeats)
    t_decode = median_times(decode, args.repeats)
    t_batched = median_times(batched, args.repeats)
    memory = {"llmlab fp32": weight_bytes(model), "llmlab int8": weight_bytes(int8), "transformers fp32":
              weight_bytes(hf), **{f"llama.cpp {k}": size for k, (_, size) in cpp.items()}}

    print(f"\ntokens/s, median of {args.repeats}       prefill {args.prompt_len:>4}   decode b1   "
          f"{args.streams} streams   weights MB")
    for name in rows:
        streams = f"{args.streams * n / t_batched[name]:>9.1f}" if name in t_batched else f"{'-':>9}"
        print(f"{name:<32} {args.prompt_len / t_prefill[name]:>11.1f} {n / t_decode[name]:>11.1f} {streams} "
              f"{memory[name] / 1e6:>12.1f}", flush=True)


if __name__ == "__main__":
    main()
