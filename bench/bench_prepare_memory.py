"""Peak memory of `llmlab data prepare` on a generated corpus far larger than its working set (default 1 GB).

    .venv/bin/python bench/bench_prepare_memory.py            # 1 GB, ~10 min on 2 cores
    .venv/bin/python bench/bench_prepare_memory.py --gb 0.1   # quick look

The corpus is JSONL documents of 10-30 sentences drawn at random from the built-in Wikipedia text, so the cleaning,
dedup and tokenizer see realistic English. The prepare command runs as a subprocess; its resident memory (the main
process plus its worker processes, summed) is sampled every 0.1 s. Target: peak < 1 GB. Prints the figures and
the throughput; the generated corpus and run directory live under bench/out/ (git-ignored) and are deleted after.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

from llmlab.data.corpus import wiki_articles

OUT = Path(__file__).resolve().parent / "out"


def generate_corpus(path: Path, target_bytes: int, seed: int = 0) -> int:
    sentences = [s for a in wiki_articles().values() for s in re.split(r"(?<=[.!?])\s+", a["extract"]) if len(s) > 20]
    rng = np.random.default_rng(seed)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target_bytes:
            lengths = rng.integers(10, 31, size=1000)
            picks = rng.integers(0, len(sentences), size=int(lengths.sum()))
            start = 0
            lines = []
            for n in lengths:
                lines.append(json.dumps({"text": " ".join(sentences[i] for i in picks[start : start + n])}) + "\n")
                start += n
            block = "".join(lines)
            f.write(block)
            written += len(block.encode("utf-8"))
    return written


def peak_tree_rss(proc: subprocess.Popen) -> tuple[int, int]:
    """Poll until the process exits; return (peak summed RSS of the tree, peak RSS of any one process)."""
    root = psutil.Process(proc.pid)
    peak_sum = peak_one = 0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            rss = [p.memory_info().rss for p in procs]
        except psutil.NoSuchProcess:
            continue
        peak_sum, peak_one = max(peak_sum, sum(rss)), max(peak_one, max(rss))
        time.sleep(0.1)
    return peak_sum, peak_one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=1.0, help="corpus size in GB (10^9 bytes)")
    parser.add_argument("--keep", action="store_true", help="keep the generated corpus and run directory")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    corpus, run_dir = OUT / "generated.jsonl", OUT / "prepare-run"
    shutil.rmtree(run_dir, ignore_errors=True)
    t0 = time.time()
    size = generate_corpus(corpus, int(args.gb * 1e9))
    print(f"generated {size / 1e6:,.0f} MB of JSONL in {time.time() - t0:.0f} s")
    cmd = [sys.executable, "-m", "llmlab", "data", "prepare", "--run_dir", str(run_dir), f"--data.sources=[jsonl:{corpus}]"]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak_sum, peak_one = peak_tree_rss(proc)
    output = proc.stdout.read()
    elapsed = time.time() - t0
    if proc.returncode != 0:
        print(output[-3000:])
        sys.exit(f"prepare failed with exit code {proc.returncode}")
    manifest = json.loads((run_dir / "data" / "tokens" / "manifest.json").read_text())
    tokens = sum(s["tokens"] for s in manifest["splits"].values())
    print(f"prepare: {elapsed:.0f} s for {size / 1e6:,.0f} MB ({size / 1e6 / elapsed:.2f} MB/s end to end), {tokens:,} tokens")
    print(f"peak RSS, main + workers summed: {peak_sum / 2**20:,.0f} MiB; largest single process: {peak_one / 2**20:,.0f} MiB")
    print(f"target < 1024 MiB: {'met' if peak_sum < 2**30 else 'NOT met'}")
    if not args.keep:
        corpus.unlink()
        shutil.rmtree(run_dir)


if __name__ == "__main__":
    main()
