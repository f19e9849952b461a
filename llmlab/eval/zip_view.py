"""The base model as a "zip file" of its training text: sizes, their ratio, and held-out bits per byte next to
classical compressors on the exact same held-out bytes (the validation Wikipedia articles of the run).

Printed at the end of `llmlab pretrain` and saved as <run_dir>/preeval/zip_view.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmlab.data.compressors import SETTINGS, best_compressor, compressor_bpb
from llmlab.data.store import iter_clean_docs
from llmlab.files import read_json
from llmlab.layout import RunDir
from llmlab.model.bpb import bits_per_byte
from llmlab.model.flops import count_params


def heldout_wiki_texts(run_dir: Path) -> list[str]:
    """The run's validation Wikipedia articles (falls back to every validation document for other corpora)."""
    val = [d for d in iter_clean_docs(run_dir, "val")]
    wiki = [d["text"] for d in val if d["source"] == "wiki"]
    return wiki or [d["text"] for d in val]


def zip_view(model, tok, run_dir: Path, byte_lengths: np.ndarray, device="cpu") -> dict:
    texts = heldout_wiki_texts(run_dir)
    stream = np.array([i for text in texts for i in (tok.bos_id, *tok.encode(text))], dtype=np.int64)
    model_eval = bits_per_byte(model, stream, byte_lengths, model.cfg.seq_len, device=device)
    heldout = "".join(texts).encode("utf-8")  # the bytes the model was charged for, in the same order
    assert model_eval["bytes"] == len(heldout), "every held-out byte must be counted exactly once"
    table = compressor_bpb(heldout)
    best_name, best_bpb = best_compressor(table)
    params = count_params(model.cfg)["total"]
    manifest = read_json(RunDir(run_dir).tokens_manifest)
    train_bytes = manifest["splits"]["train"]["bytes"]
    return {
        "heldout_bytes": len(heldout),
        "heldout_documents": len(texts),
        "model_bpb": model_eval["bpb"],
        "compressors_bpb": table,
        "best_compressor": best_name,
        "model_vs_best_compressor": model_eval["bpb"] / best_bpb,
        "model_bytes_fp32": 4 * params,
        "model_bytes_bf16": 2 * params,
        "train_text_bytes": train_bytes,
        "train_bytes_per_model_byte_fp32": train_bytes / (4 * params),
    }


def format_zip_view(view: dict) -> str:
    lines = [
        f"The base model as a zip file of its training text: {view['model_bytes_fp32'] / 1e6:.1f} MB of weights (fp32) for "
        f"{view['train_text_bytes'] / 1e6:.1f} MB of text ({view['train_bytes_per_model_byte_fp32']:.2f} text bytes per model byte)",
        f"held-out bits per byte on {view['heldout_bytes']:,} bytes ({view['heldout_documents']} unseen documents):",
        f"  {'llmlab base model':<22} {view['model_bpb']:.3f}",
    ]
    for name, bpb in sorted(view["compressors_bpb"].items(), key=lambda kv: kv[1]):
        lines.append(f"  {SETTINGS[name]:<22} {bpb:.3f}")
    lines.append(f"model / best compressor ({view['best_compressor']}): {view['model_vs_best_compressor']:.3f}")
    return "\n".join(lines)
