"""A model folder: the one-folder form of a trained model (base or chat), what `sample`, `chat` and later stages load.

    <folder>/model.safetensors   float32 weights, llmlab parameter names (see transformer.py)
    <folder>/model.json          {"format": "llmlab-model", "model": ModelConfig.to_dict(), **meta}
    <folder>/tokenizer/          the tokenizer it was trained with (tokenizer.json, tokenizer_config.json, ...)

    save_model_folder(folder, model, tokenizer_folder, meta={"stage": "base", ...})
    model, tokenizer, meta = load_model_folder(folder, device="cpu")

Written to a temporary folder beside the target and renamed, so a folder that exists is complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from llmlab.errors import LlmlabError
from llmlab.files import atomic_dir
from llmlab.model.config import ModelConfig
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.bpe import Tokenizer

FORMAT = "llmlab-model"


def save_model_folder(folder: Path, model: Transformer, tokenizer_folder: Path, meta: dict | None = None,
                      extra_files: dict[str, dict] | None = None) -> None:
    """Write the folder atomically: weights, model.json (the config and `meta`), the tokenizer, and each of
    `extra_files` (file name -> tensors, as safetensors) for models with more than the language model (a verifier's
    head)."""
    from safetensors.torch import save_file

    with atomic_dir(folder) as tmp:
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
        save_file(state, tmp / "model.safetensors", metadata={"format": FORMAT})
        info = {"format": FORMAT, "model": model.cfg.to_dict(), **(meta or {})}
        (tmp / "model.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        shutil.copytree(tokenizer_folder, tmp / "tokenizer", ignore=shutil.ignore_patterns("stats", "*.png"))
        for name, tensors in (extra_files or {}).items():
            save_file(tensors, tmp / name)


def load_model_folder(folder: Path, device: str | torch.device = "cpu") -> tuple[Transformer, Tokenizer, dict]:
    """(model in eval mode on `device`, its tokenizer, the model.json contents)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    info_path, weights = folder / "model.json", folder / "model.safetensors"
    if not info_path.exists() or not weights.exists():
        raise LlmlabError(f"{folder}: not an llmlab model folder (needs model.json and model.safetensors)")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise LlmlabError(f"{info_path}: malformed JSON ({e.msg}, line {e.lineno})") from e
    if info.get("format") != FORMAT:
        raise LlmlabError(f"{info_path}: format is {info.get('format')!r}, expected {FORMAT!r}")
    cfg = ModelConfig.from_dict(info["model"])
    tokenizer = Tokenizer.load(folder / "tokenizer")
    cfg.check_vocab(tokenizer.vocab_size)
    model = Transformer(cfg)
    try:
        state = load_file(weights)
    except (SafetensorError, OSError) as e:
        raise LlmlabError(f"{weights}: unreadable or truncated weights ({e})") from e
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise LlmlabError(f"{weights}: weights do not match model.json (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.to(device).eval(), tokenizer, info
