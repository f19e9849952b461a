"""`llmlab export`: a model in the formats the rest of the field reads.

    llmlab export hf --model runs/x/chat_sft --out exports/x-hf          # transformers / vLLM / TRL / lm-eval
    llmlab export gguf --model runs/x/chat_sft --out exports/x-f16.gguf --dtype f16   # llama.cpp / Ollama

`--model` is anything `load_model` reads (an llmlab folder, a Hugging Face folder, a GGUF, hf:org/name, smollm2).
The Hugging Face folder loads with AutoModelForCausalLM and AutoTokenizer (chat template included): the "llama"
preset as LlamaForCausalLM, the default recipe (QK-norm, SwiGLU) as Qwen3ForCausalLM (see llmlab/model/hf_format.py).
The GGUF file holds llama.cpp's "qwen3" architecture for the default recipe and "llama" for the "llama" preset and
imported Llama models (see llmlab/model/gguf_format.py); llama.cpp and Ollama run both.
"""

from __future__ import annotations

from pathlib import Path


def hf(*, model: Path, out: Path) -> None:
    """Write a Hugging Face model folder (safetensors, config.json, tokenizer files with the chat template).

    Args:
        model: the model to export (llmlab folder, HF folder, .gguf, hf:org/name or smollm2).
        out: the folder to create (must not exist or be empty).
    """
    from llmlab.model.hf_format import export_hf
    from llmlab.model.loading import load_model

    net, tok, _ = load_model(model)
    arch = export_hf(net, tok, out)
    print(f"wrote {out}: transformers class {arch} (load with AutoModelForCausalLM.from_pretrained)")


def gguf(*, model: Path, out: Path, dtype: str = "f16") -> None:
    """Write a GGUF file for llama.cpp and Ollama (qwen3 architecture for the default recipe, llama for Llama models).

    Args:
        model: the model to export (llmlab folder, HF folder, .gguf, hf:org/name or smollm2).
        out: the .gguf file to write.
        dtype: f32 or f16 for the weight matrices (norms stay f32).
    """
    from llmlab.model.gguf_format import write_gguf
    from llmlab.model.loading import load_model

    net, tok, _ = load_model(model)
    arch = write_gguf(net, tok, out, dtype)
    print(f"wrote {out}: {arch} architecture, {dtype} matrices, {Path(out).stat().st_size / 1e6:.1f} MB")
