"""Hugging Face model folders in and out: parameter names, config.json, tokenizer files.

    export_hf(model, tok, Path("out/hf"))        # -> LlamaForCausalLM (llama preset) or Qwen3ForCausalLM (default)
    model, tok_folder, info = import_hf(Path("some/hf-folder"))   # Llama or Qwen3 checkpoint -> llmlab Transformer

Which llmlab recipes a transformers class computes exactly:
    no QK-norm ("llama" preset)       -> LlamaForCausalLM: a pure rename (both use rotate-half RoPE).
    QK-norm (the default recipe)      -> Qwen3ForCausalLM, which has the same per-head q_norm / k_norm RMSNorm over
                                         head_dim before RoPE.
    ReLU^2 MLP (the default recipe)   -> both classes' gated MLP act(gate(x)) * up(x) with hidden_act="relu" and
                                         gate_proj = up_proj = our w_up: relu(u) * u = relu(u)^2 exactly.
    learned positions, LayerNorm, GELU, a logit softcap: no transformers class computes these; export raises,
    naming the feature.
Import reads LlamaForCausalLM and Qwen3ForCausalLM folders (tied or untied head, GQA, plain RoPE with any theta),
including llmlab's ReLU^2 exports (recognised by hidden_act "relu" with gate_proj == up_proj).
Weights are float32 (the CPU computes in float32; transformers loads in the config's dtype).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import torch

from llmlab.errors import LlmlabError
from llmlab.files import atomic_dir, atomic_write_json
from llmlab.model.config import ModelConfig
from llmlab.model.transformer import Transformer

# Per-block parameters: llmlab suffix -> HF suffix (under model.layers.{i}.) and GGUF suffix (under blk.{i}.).
BLOCK_NAMES = {
    "attn_norm.weight": ("input_layernorm.weight", "attn_norm.weight"),
    "attn.wq.weight": ("self_attn.q_proj.weight", "attn_q.weight"),
    "attn.wk.weight": ("self_attn.k_proj.weight", "attn_k.weight"),
    "attn.wv.weight": ("self_attn.v_proj.weight", "attn_v.weight"),
    "attn.wo.weight": ("self_attn.o_proj.weight", "attn_output.weight"),
    "attn.q_norm.weight": ("self_attn.q_norm.weight", "attn_q_norm.weight"),
    "attn.k_norm.weight": ("self_attn.k_norm.weight", "attn_k_norm.weight"),
    "mlp_norm.weight": ("post_attention_layernorm.weight", "ffn_norm.weight"),
    "mlp.w_gate.weight": ("mlp.gate_proj.weight", "ffn_gate.weight"),
    "mlp.w_up.weight": ("mlp.up_proj.weight", "ffn_up.weight"),
    "mlp.w_down.weight": ("mlp.down_proj.weight", "ffn_down.weight"),
}
# Parameters outside the blocks: llmlab name -> (HF name, GGUF name).
TOP_NAMES = {
    "embed.weight": ("model.embed_tokens.weight", "token_embd.weight"),
    "norm.weight": ("model.norm.weight", "output_norm.weight"),
    "lm_head.weight": ("lm_head.weight", "output.weight"),
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def rename(name: str, fmt: int) -> str:
    """llmlab parameter name -> its name in HF (fmt=0) or GGUF (fmt=1) layout."""
    if name in TOP_NAMES:
        return TOP_NAMES[name][fmt]
    _, layer, suffix = name.split(".", 2)  # blocks.{i}.{suffix}
    return f"{('model.layers.', 'blk.')[fmt]}{layer}.{BLOCK_NAMES[suffix][fmt]}"


def unsupported_features(cfg: ModelConfig) -> list[str]:
    """What in `cfg` neither LlamaForCausalLM nor Qwen3ForCausalLM computes."""
    problems = []
    if cfg.pos_embedding != "rope":
        problems.append("learned position embeddings (pos_embedding='learned')")
    if cfg.norm != "rmsnorm":
        problems.append("LayerNorm (norm='layernorm')")
    if cfg.mlp == "gelu":
        problems.append("the GELU MLP (mlp='gelu')")
    if cfg.logit_softcap is not None:
        problems.append(f"the logit softcap ({cfg.logit_softcap})")
    return problems


def hf_architecture(cfg: ModelConfig) -> str:
    """"LlamaForCausalLM" or "Qwen3ForCausalLM"; LlmlabError naming what cannot be expressed."""
    problems = unsupported_features(cfg)
    if problems:
        raise LlmlabError("this model cannot be exported to a transformers class: " + "; ".join(problems))
    return "Qwen3ForCausalLM" if cfg.qk_norm else "LlamaForCausalLM"


def hf_config(cfg: ModelConfig, tok) -> dict:
    """config.json for `cfg`, with both the transformers-5 and the legacy key sets (see ecosystem notes)."""
    arch = hf_architecture(cfg)
    config = {
        "architectures": [arch],
        "model_type": "qwen3" if arch.startswith("Qwen3") else "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.mlp_hidden,
        "num_hidden_layers": cfg.depth,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "hidden_act": "relu" if cfg.mlp == "relu2" else "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": cfg.tie_embeddings,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "bos_token_id": tok.bos_id,
        "eos_token_id": tok.special_ids.get("end_of_turn", tok.eos_id),
        "pad_token_id": tok.pad_id,
        "torch_dtype": "float32",
        "dtype": "float32",
    }
    if arch.startswith("Qwen3"):
        config.update(use_sliding_window=False, sliding_window=None, max_window_layers=cfg.depth)
    return config


def hf_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """HF-named float32 CPU tensors; for ReLU^2 the single w_up is written as both gate_proj and up_proj."""
    state = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu", torch.float32).contiguous()
        state[rename(name, 0)] = tensor
        if model.cfg.mlp == "relu2" and name.endswith("mlp.w_up.weight"):
            state[rename(name.replace("w_up", "w_gate"), 0)] = tensor.clone()
    return state


def copy_tokenizer_files(src: Path, dst: Path) -> None:
    """Copy the tokenizer files a transformers / llmlab tokenizer folder holds (those that exist)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (Path(src) / name).exists():
            shutil.copy2(Path(src) / name, dst / name)


def export_hf(model: Transformer, tok, folder: Path) -> str:
    """Write a transformers-loadable folder (weights, config, generation config, tokenizer with chat template);
    return the architecture name. Written to a temporary folder and renamed, so `folder` is complete if it exists."""
    from safetensors.torch import save_file

    cfg = model.cfg
    config = hf_config(cfg, tok)
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise LlmlabError(f"{folder}: already exists and is not empty; choose a new --out folder")
    with atomic_dir(folder) as tmp:
        save_file(hf_state_dict(model), tmp / "model.safetensors", metadata={"format": "pt"})
        atomic_write_json(tmp / "config.json", config)
        atomic_write_json(tmp / "generation_config.json", {
            "bos_token_id": config["bos_token_id"],
            "eos_token_id": sorted({config["eos_token_id"], tok.eos_id}),
            "pad_token_id": config["pad_token_id"],
        })
        copy_tokenizer_files(tok.folder, tmp)
        _set_model_max_length(tmp / "tokenizer_config.json", cfg.seq_len)
    return config["architectures"][0]


def _set_model_max_length(path: Path, seq_len: int) -> None:
    if path.exists():
        config = json.loads(path.read_text(encoding="utf-8"))
        config["model_max_length"] = seq_len
        atomic_write_json(path, config)


def config_from_hf(config: dict, path: Path) -> ModelConfig:
    """ModelConfig of a Llama / Qwen3 config.json; LlmlabError naming the field llmlab cannot reproduce."""
    model_type = config.get("model_type")
    if model_type not in ("llama", "qwen3"):
        raise LlmlabError(f"{path}: model_type {model_type!r} is not a Llama-family model llmlab can import "
                          "(supported: llama, qwen3)")
    for field in ("attention_bias", "mlp_bias"):
        if config.get(field):
            raise LlmlabError(f"{path}: {field}=true is not supported (llmlab's layers have no biases)")
    if config.get("hidden_act", "silu") not in ("silu", "relu"):
        raise LlmlabError(f"{path}: hidden_act {config['hidden_act']!r} is not supported (silu, or relu for ReLU^2)")
    rope = config.get("rope_scaling") or {}
    if rope and rope.get("rope_type", rope.get("type")) not in (None, "default"):
        raise LlmlabError(f"{path}: rope_scaling {rope} is not supported (plain RoPE only)")
    if config.get("use_sliding_window"):
        raise LlmlabError(f"{path}: sliding-window attention (use_sliding_window) is not supported")
    try:
        d_model, n_heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        head_dim = int(config.get("head_dim") or d_model // n_heads)
        if head_dim * n_heads != d_model:
            raise LlmlabError(f"{path}: head_dim {head_dim} x {n_heads} heads != hidden_size {d_model} "
                              "(llmlab derives head_dim = hidden_size / heads)")
        theta = config.get("rope_theta") or (config.get("rope_parameters") or {}).get("rope_theta") or 10000.0
        return ModelConfig(
            vocab_size=int(config["vocab_size"]),
            seq_len=int(config.get("max_position_embeddings", 2048)),
            depth=int(config["num_hidden_layers"]),
            d_model=d_model,
            n_heads=n_heads,
            n_kv_heads=int(config.get("num_key_value_heads") or n_heads),
            mlp_hidden=int(config["intermediate_size"]),
            mlp="relu2" if config.get("hidden_act") == "relu" else "swiglu",
            qk_norm=model_type == "qwen3",
            tie_embeddings=bool(config.get("tie_word_embeddings", False)),
            logit_softcap=None,
            zero_init_proj=False,
            rope_theta=float(theta),
            norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        )
    except KeyError as e:
        raise LlmlabError(f"{path}: missing field {e.args[0]!r}") from e


def read_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of model.safetensors or of the shards listed in model.safetensors.index.json."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    index = folder / "model.safetensors.index.json"
    files = ["model.safetensors"]
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    state = {}
    for name in files:
        path = folder / name
        if not path.exists():
            raise LlmlabError(f"{path}: missing weights file (a Hugging Face folder needs model.safetensors "
                              "or its shards)")
        try:
            state.update(load_file(path))
        except (SafetensorError, OSError) as e:
            raise LlmlabError(f"{path}: unreadable or truncated weights ({e})") from e
    return state


def import_hf(folder: Path) -> tuple[Transformer, dict]:
    """A Llama / Qwen3 Hugging Face folder -> (llmlab Transformer in float32, info). The tokenizer is the folder's."""
    folder = Path(folder)
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except OSError as e:
        raise LlmlabError(f"{config_path}: cannot read ({e.strerror}); a Hugging Face model folder has "
                          "config.json") from e
    except json.JSONDecodeError as e:
        raise LlmlabError(f"{config_path}: malformed JSON ({e.msg}, line {e.lineno})") from e
    cfg = config_from_hf(config, config_path)
    hf = read_hf_weights(folder)
    if cfg.mlp == "relu2":
        for i in range(cfg.depth):
            gate = hf.pop(rename(f"blocks.{i}.mlp.w_gate.weight", 0), None)
            up = hf[rename(f"blocks.{i}.mlp.w_up.weight", 0)]
            if gate is None or not torch.equal(gate, up):
                raise LlmlabError(f"{folder}: hidden_act relu is imported only as llmlab's ReLU^2 export "
                                  f"(gate_proj == up_proj), which layer {i} is not")
    model = empty_model(cfg)
    load_renamed(model, hf, 0, folder)
    return model, {"format": "hf", "architecture": (config.get("architectures") or ["?"])[0]}


def empty_model(cfg: ModelConfig) -> Transformer:
    """A Transformer with uninitialised weights, for weights about to be loaded: building it on the meta device
    skips the random init, ~10 s of a 135M model's ~13 s load on 2 cores. The buffers (RoPE tables), which are
    computed rather than loaded, are copied from a one-block model of the same shape."""
    with torch.device("meta"):
        model = Transformer(cfg)
    model.to_empty(device="cpu")
    small = Transformer(dataclasses.replace(cfg, depth=1, vocab_size=1))
    buffers = dict(small.named_buffers())
    for name, buffer in model.named_buffers():
        buffer.copy_(buffers[re.sub(r"^blocks\.\d+\.", "blocks.0.", name)])
    return model


def load_renamed(model: Transformer, foreign: dict[str, torch.Tensor], fmt: int, source: Path) -> None:
    """Load tensors named in HF (fmt=0) or GGUF (fmt=1) layout into `model`; LlmlabError on any mismatch.

    A tied model may find a copy of the head in the file (HF writes one sometimes): it must equal the embedding."""
    state = {}
    head_name = rename("lm_head.weight", fmt)
    for name, param in model.state_dict().items():
        key = rename(name, fmt)
        if key not in foreign:
            raise LlmlabError(f"{source}: tensor {key} is missing (the config describes a model that has it)")
        tensor = foreign.pop(key).to(torch.float32)
        if tuple(tensor.shape) != tuple(param.shape):
            raise LlmlabError(f"{source}: tensor {key} has shape {tuple(tensor.shape)}, the config implies "
                              f"{tuple(param.shape)} (do the weights and config.json belong together?)")
        state[name] = tensor
    if model.cfg.tie_embeddings and head_name in foreign:
        if not torch.equal(foreign.pop(head_name).float(), state["embed.weight"]):
            raise LlmlabError(f"{source}: the config says tied embeddings but {head_name} differs from the embedding")
    if foreign:
        raise LlmlabError(f"{source}: tensors the model does not have: {', '.join(sorted(foreign)[:5])}")
    model.load_state_dict(state, strict=True)
