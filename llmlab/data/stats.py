"""`llmlab data stats`: what the prepared dataset holds, as a table, `data/stats.json` and a length histogram PNG.

Documents, bytes, tokens and bytes/token per split; documents read, changed and removed per cleaning step and
per source; problems met while reading; and the document-length distribution (tokens), read from the shards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmlab.data.corpus import ATTRIBUTION
from llmlab.data.shards import document_lengths, open_shard
from llmlab.errors import LlmlabError
from llmlab.files import atomic_path, atomic_write_json, read_json
from llmlab.layout import RunDir


def compute_stats(run_dir: Path) -> dict:
    manifest_path = RunDir(run_dir).tokens_manifest
    if not manifest_path.exists():
        raise LlmlabError(f"{manifest_path}: not found; run `llmlab data prepare --run_dir {run_dir}` first")
    manifest = read_json(manifest_path)
    report = read_json(RunDir(run_dir).clean_done)["report"]
    bos = manifest["tokenizer"]["bos_id"]
    splits, lengths = {}, {}
    for split, info in manifest["splits"].items():
        lens = [document_lengths(open_shard(manifest_path.parent / s["file"]), bos) for s in info["shards"]]
        lengths[split] = np.concatenate(lens) if lens else np.zeros(0, dtype=np.int64)
        splits[split] = {
            "documents": info["docs"],
            "bytes": info["bytes"],
            "tokens": info["tokens"],
            "bytes_per_token": info["bytes"] / max(1, info["tokens"] - info["docs"]),  # BOS carries no bytes
            "doc_tokens_median": float(np.median(lengths[split])) if len(lengths[split]) else 0.0,
        }
    used = {s.split(":")[0] for s in manifest["sources"]}
    return {
        "splits": splits,
        "read": report["read"],
        "changed": report["changed"],
        "removed": report["removed"],
        "kept": report["kept"],
        "problems": report["problems"],
        "tokenizer": manifest["tokenizer"],
        "attribution": [text for part, text in ATTRIBUTION.items() if "builtin" in used],
        "_lengths": lengths,
    }


def format_stats(stats: dict) -> str:
    lines = ["split    documents        bytes       tokens  bytes/token  median doc tokens"]
    for split, s in stats["splits"].items():
        lines.append(
            f"{split:<6} {s['documents']:>11,} {s['bytes']:>12,} {s['tokens']:>12,} {s['bytes_per_token']:>12.2f}"
            f" {s['doc_tokens_median']:>18,.0f}"
        )
    lines.append("\ndocuments read per source: " + ", ".join(f"{k} {v:,}" for k, v in stats["read"].items()))
    lines.append("kept (source/split): " + ", ".join(f"{k} {v:,}" for k, v in sorted(stats["kept"].items())))
    lines.append("changed by step: " + (", ".join(f"{k} {sum(v.values()):,}" for k, v in stats["changed"].items()) or "none"))
    lines.append("removed by step: " + (", ".join(f"{k} {sum(v.values()):,}" for k, v in stats["removed"].items()) or "none"))
    if stats["problems"]:
        lines.append(f"problems ({len(stats['problems'])}, skipped):")
        lines += [f"  {p}" for p in stats["problems"][:20]]
    for text in stats["attribution"]:
        lines.append(f"data: {text}")
    return "\n".join(lines)


def plot_lengths(lengths: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    top = max((int(v.max()) for v in lengths.values() if len(v)), default=1)
    bins = np.logspace(0, np.log10(max(top, 2)), 50)
    for split, lens in lengths.items():
        if len(lens):
            ax.hist(lens, bins=bins, alpha=0.6, label=f"{split} ({len(lens):,} docs)")
    ax.set_xscale("log")
    ax.set_xlabel("document length (tokens, incl. BOS)")
    ax.set_ylabel("documents")
    ax.set_title("Document lengths")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_stats(run_dir: Path) -> tuple[dict, Path]:
    """Compute, save `data/stats.json` and `data/doc_lengths.png`; return (stats, png path)."""
    stats = compute_stats(run_dir)
    lengths = stats.pop("_lengths")
    atomic_write_json(RunDir(run_dir).data / "stats.json", stats)
    png = RunDir(run_dir).data / "doc_lengths.png"
    plot_lengths(lengths, png)
    return stats, png
