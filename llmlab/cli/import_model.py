"""`llmlab import`: convert a Llama-family model (Hugging Face folder, GGUF, hf:org/name, smollm2) to an llmlab folder.

    llmlab import smollm2 --out runs/smollm2
    llmlab import path/to/hf-folder --out runs/imported
    llmlab import model.Q8_0.gguf --out runs/imported           # quantised tensors are dequantised to float32

Every command's --model already accepts these sources directly; importing once saves the conversion (GGUF
dequantisation, ~10-30 s for SmolLM2) on each later load.
"""

from __future__ import annotations

from pathlib import Path


def import_model(source: str, *, out: Path) -> None:
    """Convert SOURCE (HF folder, .gguf, hf:org/name or smollm2) into the llmlab model folder OUT.

    Args:
        source: the model to import: a Hugging Face folder, a .gguf file, hf:org/name, or smollm2.
        out: the llmlab model folder to write (replaced if it exists).
    """
    from llmlab.model.loading import import_model as convert

    model, tok = convert(source, Path(out))
    cfg = model.cfg
    print(f"imported {source} -> {out}: {cfg.depth} layers, d_model {cfg.d_model}, {cfg.n_heads}/{cfg.n_kv_heads} "
          f"heads, vocab {cfg.vocab_size}, {'tied' if cfg.tie_embeddings else 'untied'} head, chat format "
          f"{tok.chat_format or 'none'}")
