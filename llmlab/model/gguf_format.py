"""GGUF files (llama.cpp's format) in and out, with the `gguf` package only.

    model, tokenizer_files, info = read_gguf(Path("model.gguf"))    # llama / qwen3; F32/F16/BF16/Q4_0/.../Q8_0/K
    write_gguf(model, tok, Path("model-f16.gguf"), dtype="f16")      # qwen3 (QK-norm) or llama arch, F32 or F16

Which llama.cpp architecture computes which llmlab recipe (`gguf_architecture`):
    QK-norm + SwiGLU (the default recipe)  -> "qwen3": per-head RMSNorm of q and k before RoPE, rotate-half RoPE
                                              (llama.cpp's NEOX mode), so the weights go out as they are.
    no QK-norm + SwiGLU ("llama" preset)   -> "llama": llama.cpp pairs RoPE dimensions interleaved (2i, 2i+1) where
                                              llmlab and HF rotate halves (i, i + head_dim/2), so the rows of wq and
                                              wk are permuted on the way out and back on the way in (`_permute` /
                                              `_unpermute`, as llama.cpp's converter and transformers' loader do).
Both hard-wire SiLU in the MLP: a ReLU^2 model (mlp="relu2") is refused by name, never written to compute otherwise.

The tokenizer travels as a byte-level BPE ("gpt2" model): tokens, token types, merges, and the pre-tokenizer by name
(`tokenizer.ggml.pre`), since llama.cpp re-implements each pre-tokenizer regex in C++ and picks it by that name.
PRE_TOKENIZERS maps the names llmlab reads and writes to the HF pre-tokenizer they stand for.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from llmlab.errors import LlmlabError
from llmlab.files import atomic_path
from llmlab.model.config import ModelConfig
from llmlab.model.hf_format import empty_model, load_renamed, rename, unsupported_features
from llmlab.model.transformer import Transformer
from llmlab.tokenizer.bpe import LLAMA3_PAT, QWEN2_PAT

# llama.cpp pre-tokenizer name -> (HF pre_tokenizer JSON, BPE ignore_merges).
_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
PRE_TOKENIZERS = {
    "qwen2": ({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_PAT}, "behavior": "Isolated", "invert": False},
        {**_BYTE_LEVEL, "use_regex": False}]}, False),
    "llama-bpe": ({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_PAT}, "behavior": "Isolated", "invert": False},
        {**_BYTE_LEVEL, "use_regex": False}]}, True),
    "smollm": ({"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, _BYTE_LEVEL]}, False),
    "gpt-2": (_BYTE_LEVEL, False),
}
# What llmlab dequantises (all through gguf.quants); other types (e.g. the IQ family) are refused by name.
SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
_CONTROL, _NORMAL = 3, 1  # gguf.TokenType values


def _permute(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Rows of a (n_heads * head_dim, in) q/k matrix from rotate-half to llama.cpp's interleaved RoPE order."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _unpermute(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Inverse of _permute."""
    return w.reshape(n_heads, w.shape[0] // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _open(path: Path):
    import gguf

    if not path.exists():
        raise LlmlabError(f"{path}: no such GGUF file")
    try:
        return gguf.GGUFReader(path)
    except Exception as e:  # the reader raises ValueError / struct / numpy errors on a cut-off or foreign file
        raise LlmlabError(f"{path}: not a readable GGUF file, or truncated ({type(e).__name__}: {e})") from e


def _field(reader, key: str, default=None, *, path: Path):
    field = reader.fields.get(key)
    if field is None:
        if default is None:
            raise LlmlabError(f"{path}: GGUF key {key} is missing")
        return default
    return field.contents()


def gguf_architecture(cfg: ModelConfig) -> str:
    """"qwen3" or "llama": the llama.cpp architecture that computes `cfg`; LlmlabError naming what none does."""
    problems = unsupported_features(cfg)
    if cfg.mlp == "relu2":
        problems.append("the ReLU^2 MLP (llama.cpp's llama and qwen3 architectures hard-wire SiLU; SwiGLU, the "
                        "default recipe, exports)")
    if problems:
        raise LlmlabError("this model cannot be written as a GGUF llama.cpp computes the same: " + "; ".join(problems)
                          + " (`llmlab export hf` also handles ReLU^2)")
    return "qwen3" if cfg.qk_norm else "llama"


def read_gguf(path: Path) -> tuple[Transformer, dict[str, str], dict]:
    """(llmlab Transformer in float32, tokenizer files {name: text} for Tokenizer.load, info)."""
    from gguf.quants import dequantize

    path = Path(path)
    reader = _open(path)
    arch = _field(reader, "general.architecture", path=path)
    if arch not in ("llama", "qwen3"):
        raise LlmlabError(f"{path}: GGUF architecture {arch!r} is not supported (llmlab imports 'llama' and "
                          "'qwen3' GGUFs)")
    get = lambda key, default=None: _field(reader, f"{arch}.{key}", default, path=path)  # noqa: E731
    if get("rope.scaling.type", "none") not in ("none", ""):
        raise LlmlabError(f"{path}: RoPE scaling {get('rope.scaling.type')!r} is not supported (plain RoPE only)")
    tensors = {t.name: t for t in reader.tensors}
    n_heads, d_model = int(get("attention.head_count")), int(get("embedding_length"))
    tokens = _field(reader, "tokenizer.ggml.tokens", path=path)
    cfg = ModelConfig(
        vocab_size=int(get("vocab_size", len(tokens))),
        seq_len=int(get("context_length")),
        depth=int(get("block_count")),
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=int(get("attention.head_count_kv", n_heads)),
        mlp_hidden=int(get("feed_forward_length")),
        mlp="swiglu",
        qk_norm=arch == "qwen3",
        tie_embeddings="output.weight" not in tensors,
        logit_softcap=None,
        zero_init_proj=False,
        rope_theta=float(get("rope.freq_base", 10000.0)),
        norm_eps=float(get("attention.layer_norm_rms_epsilon")),
    )
    if int(get("attention.key_length", cfg.head_dim)) != cfg.head_dim:
        raise LlmlabError(f"{path}: attention.key_length != embedding_length / head_count ({cfg.head_dim}) is not "
                          "supported (llmlab derives head_dim from the width)")
    if int(get("rope.dimension_count", cfg.head_dim)) != cfg.head_dim:
        raise LlmlabError(f"{path}: partial RoPE (rope.dimension_count != head_dim {cfg.head_dim}) is not supported")
    foreign = {}
    for name, t in tensors.items():
        kind = t.tensor_type.name
        if kind not in SUPPORTED_TYPES:
            raise LlmlabError(f"{path}: tensor {name} is {kind}, a quantisation llmlab does not read "
                              f"(supported: {', '.join(SUPPORTED_TYPES)})")
        try:
            data = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        except (ValueError, IndexError) as e:
            raise LlmlabError(f"{path}: tensor {name} is truncated or malformed ({e})") from e
        foreign[name] = torch.from_numpy(np.array(data.reshape(tuple(reversed(t.shape.tolist()))), dtype=np.float32))
    if arch == "llama":  # back from llama.cpp's interleaved RoPE rows (qwen3 GGUFs keep rotate-half order)
        for i in range(cfg.depth):
            for suffix, heads in (("attn.wq.weight", cfg.n_heads), ("attn.wk.weight", cfg.n_kv_heads)):
                key = rename(f"blocks.{i}.{suffix}", 1)
                if key in foreign:
                    foreign[key] = _unpermute(foreign[key], heads)
    model = empty_model(cfg)
    load_renamed(model, foreign, 1, path)
    info = {"format": "gguf", "file_type": int(_field(reader, "general.file_type", -1, path=path)),
            "name": _field(reader, "general.name", "", path=path)}
    return model, _tokenizer_files(reader, tokens, path), info


def _tokenizer_files(reader, tokens: list[str], path: Path) -> dict[str, str]:
    """tokenizer.json + tokenizer_config.json rebuilt from the GGUF's tokenizer keys."""
    model = _field(reader, "tokenizer.ggml.model", path=path)
    pre = _field(reader, "tokenizer.ggml.pre", "default", path=path)
    if model != "gpt2":
        raise LlmlabError(f"{path}: tokenizer model {model!r} is not supported (byte-level BPE, 'gpt2', only)")
    if pre not in PRE_TOKENIZERS:
        raise LlmlabError(f"{path}: pre-tokenizer {pre!r} is not one llmlab knows ({', '.join(PRE_TOKENIZERS)})")
    pre_tokenizer, ignore_merges = PRE_TOKENIZERS[pre]
    types = _field(reader, "tokenizer.ggml.token_type", path=path)
    merges = _field(reader, "tokenizer.ggml.merges", path=path)
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, (t, kind) in enumerate(zip(tokens, types)) if kind == _CONTROL]
    spec = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": pre_tokenizer, "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": ignore_merges, "vocab": {t: i for i, t in enumerate(tokens)},
                  "merges": [m.split(" ") for m in merges]},
    }

    def token(key: str) -> str | None:
        i = _field(reader, f"tokenizer.ggml.{key}", -1, path=path)
        return tokens[i] if 0 <= i < len(tokens) else None

    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": token("bos_token_id"),
              "eos_token": token("eos_token_id"), "pad_token": token("padding_token_id"),
              "add_bos_token": bool(_field(reader, "tokenizer.ggml.add_bos_token", False, path=path)),
              "clean_up_tokenization_spaces": False, "llama_cpp_pre": pre,
              "chat_template": _field(reader, "tokenizer.chat_template", "", path=path)}
    return {"tokenizer.json": json.dumps(spec, ensure_ascii=False), "tokenizer_config.json": json.dumps(config)}


def pre_tokenizer_name(spec: dict, path: Path) -> str:
    """The llama.cpp name of a tokenizer.json's pre-tokenizer; LlmlabError when llama.cpp has none for it."""
    for name, (pre, ignore_merges) in PRE_TOKENIZERS.items():
        if _same_pre(spec.get("pre_tokenizer"), pre):
            return name
    raise LlmlabError(f"{path}: its pre-tokenizer has no llama.cpp name (known: {', '.join(PRE_TOKENIZERS)}); "
                      "llama.cpp would split text differently, so the GGUF is not written")


def _same_pre(a, b) -> bool:
    keys = ("type", "pattern", "behavior", "individual_digits", "use_regex", "add_prefix_space")
    if not isinstance(a, dict) or a.get("type") != b.get("type"):
        return False
    if a["type"] == "Sequence":
        return len(a["pretokenizers"]) == len(b["pretokenizers"]) and all(
            _same_pre(x, y) for x, y in zip(a["pretokenizers"], b["pretokenizers"]))
    return all(a.get(k) == b.get(k) for k in keys if k in b)


def write_gguf(model: Transformer, tok, path: Path, dtype: str = "f32") -> str:
    """Write `model` and its tokenizer as a qwen3- or llama-arch GGUF, matrices in F32 or F16 (norms stay F32);
    return the architecture's name."""
    import gguf

    cfg = model.cfg
    arch = gguf_architecture(cfg)
    if dtype not in ("f32", "f16"):
        raise LlmlabError(f"GGUF dtype must be f32 or f16, got {dtype!r}")
    spec = json.loads((tok.folder / "tokenizer.json").read_text(encoding="utf-8"))
    pre = pre_tokenizer_name(spec, tok.folder / "tokenizer.json")
    config_path = tok.folder / "tokenizer_config.json"
    template = None
    if config_path.exists():
        template = json.loads(config_path.read_text(encoding="utf-8")).get("chat_template")
    vocab = {**spec["model"]["vocab"], **{t["content"]: t["id"] for t in spec["added_tokens"]}}
    tokens = [None] * tok.vocab_size
    for text, i in vocab.items():
        tokens[i] = text
    specials = {t["id"] for t in spec["added_tokens"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    rows = cfg.vocab_size - tok.vocab_size  # embedding rows past the tokenizer get placeholder tokens
    tokens += [f"[PAD{i}]" for i in range(rows)]

    logging.getLogger("gguf").setLevel(logging.WARNING)  # its INFO lines name the temporary file
    with atomic_path(path) as tmp:
        w = gguf.GGUFWriter(str(tmp), arch)
        w.add_name(Path(path).stem)
        w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
        w.add_context_length(cfg.seq_len)
        w.add_embedding_length(cfg.d_model)
        w.add_block_count(cfg.depth)
        w.add_feed_forward_length(cfg.mlp_hidden)
        w.add_head_count(cfg.n_heads)
        w.add_head_count_kv(cfg.n_kv_heads)
        w.add_key_length(cfg.head_dim)
        w.add_value_length(cfg.head_dim)
        w.add_rope_dimension_count(cfg.head_dim)
        w.add_rope_freq_base(cfg.rope_theta)
        w.add_layer_norm_rms_eps(cfg.norm_eps)
        w.add_vocab_size(cfg.vocab_size)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types([_CONTROL if i in specials else _NORMAL for i in range(tok.vocab_size)] + [5] * rows)
        w.add_token_merges(merges)
        w.add_bos_token_id(tok.bos_id)
        w.add_eos_token_id(tok.special_ids.get("end_of_turn", tok.eos_id))
        w.add_pad_token_id(tok.pad_id)
        w.add_add_bos_token(tok.add_bos)
        if template:
            w.add_chat_template(template)
        for name, tensor in model.state_dict().items():
            data = tensor.detach().to("cpu", torch.float32)
            if arch == "llama" and name.endswith(("attn.wq.weight", "attn.wk.weight")):
                data = _permute(data, cfg.n_heads if name.endswith("wq.weight") else cfg.n_kv_heads)
            array = data.numpy()
            if dtype == "f16" and array.ndim == 2:
                array = array.astype(np.float16)
            w.add_tensor(rename(name, 1), np.ascontiguousarray(array))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return arch
