"""Compression: held-out bits per byte with a 95% interval, five classical compressors on the same bytes, and
training bytes per model byte (llmlab.eval.zip_view, the view `llmlab pretrain` prints).

    llmlab eval run --model runs/x/base --evals '[compression]'

The score scores each held-out document on its own (from its BOS, windows of seq_len within the document), so
documents are independent units: the interval is a percentile bootstrap over documents of sum(bits) / sum(bytes).
`stream_bpb` is zip_view's figure, the documents packed back to back as in pre-training (the model may read the
previous document), which is the one compared with the compressors (they too see the whole concatenation): the two
differ by the context the model gets at each document start. Applies to every stage (for a chat model it shows
what fine-tuning cost the language model). No chance level; the best compressor is the bar.
"""

from __future__ import annotations

import numpy as np

from llmlab.eval.context import EvalContext
from llmlab.eval.registry import register
from llmlab.eval.scoring import ratio_bootstrap_ci
from llmlab.eval.zip_view import heldout_wiki_texts, zip_view
from llmlab.model.bpb import bits_per_byte, token_byte_lengths


@register("compression", unit="bpb", needs_run_dir=True)
def run(ctx: EvalContext) -> dict:
    """Held-out bits per byte (documents scored on their own) next to five compressors on the same bytes."""
    run_dir = ctx.require_run_dir()
    byte_lengths = token_byte_lengths(ctx.tok)
    bits, n_bytes = [], []
    for text in heldout_wiki_texts(run_dir):
        doc = bits_per_byte(ctx.model, np.array([ctx.tok.bos_id, *ctx.tok.encode(text)], dtype=np.int64),
                            byte_lengths, ctx.seq_len)
        bits.append(doc["bits"])
        n_bytes.append(doc["bytes"])
        ctx.record(prompt=text[:200], output=None, score=doc["bpb"], bits=doc["bits"], bytes=doc["bytes"],
                   tokens=doc["tokens"], decoding=None)
    bpb, ci = ratio_bootstrap_ci(bits, n_bytes, seed=ctx.seed)
    view = zip_view(ctx.model, ctx.tok, run_dir, byte_lengths)
    assert view["heldout_bytes"] == sum(n_bytes), "the per-document and stream figures must cover the same bytes"
    return {
        "score": bpb, "ci95": ci, "n": len(bits), "chance": None,
        "metrics": {"stream_bpb": view["model_bpb"], **{f"{k}_bpb": v for k, v in view["compressors_bpb"].items()},
                    "best_compressor_bpb": view["compressors_bpb"][view["best_compressor"]],
                    "stream_vs_best_compressor": view["model_vs_best_compressor"],
                    "heldout_bytes": view["heldout_bytes"], "model_bytes_fp32": view["model_bytes_fp32"],
                    "train_text_bytes": view["train_text_bytes"],
                    "train_bytes_per_model_byte_fp32": view["train_bytes_per_model_byte_fp32"]},
        "notes": f"best compressor: {view['best_compressor']}; score = documents scored separately, stream_bpb = "
                 "packed as in pre-training (as the compressors see them)",
    }
