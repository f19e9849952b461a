"""ModelConfig: every architectural choice of the transformer, derived from one size dial, `depth`.

The depth dial (`ModelConfig.from_depth(depth, vocab_size, seq_len, **overrides)`; every derived value overridable):

    d_model     = 64 * depth                         (the "aspect ratio" 64 of nanochat; depth 12 = GPT-2 small's width)
    head_dim    = 32 if d_model < 256 else 64        (so tiny models still get several heads)
    n_heads     = d_model // head_dim                (depth 1-3: 2, 4, 6 heads of 32; depth >= 4: `depth` heads of 64)
    n_kv_heads  = n_heads                            (plain multi-head attention: at these sizes the KV cache is small,
                                                      so grouping saves little; set n_kv_heads lower to try GQA)
    mlp_hidden  = 4 * d_model for relu2 / gelu; for swiglu 8/3 * d_model rounded up to a multiple of 64 (same
                  parameter count as a 4x two-matrix MLP, as in Llama)

Parameters (llmlab/model/flops.py `count_params`) with vocab_size 4096; "default" and "gpt2" are tied (one
4096 x d_model matrix is both the embedding and the head), "gpt2" adds a learned position table of seq_len 512, "llama" is untied:

    depth  d_model  heads  mlp_hidden  non-embedding  "default" total  "gpt2" total
      1       64      2       192          53,504          315,648        344,256
      2      128      4       384         426,752          951,040        983,680
      3      192      6       512       1,328,640        2,115,072      2,213,184
      4      256      4       704       3,214,080        4,262,656      4,327,680
      6      384      6     1,024      10,622,592       12,195,456     12,391,296
      8      512      8     1,408      25,699,840       27,796,992     27,533,824
     12      768     12     2,048      84,955,392       88,101,120     88,492,800

Presets (`ModelConfig.preset(name, depth, vocab_size=..., seq_len=...)`):
    "default"  the modern recipe, as measured on this project's 2-core CPU runs (docs/LOG.md, ablations): RoPE,
               RMSNorm, QK-norm, SwiGLU MLP, zero-init output projections, init std 1/sqrt(d_model), and a tied
               head with no logit softcap: at these sizes tying helped (-0.03 bpb) and the softcap bought nothing
               measurable for 20% of the CPU step time. SwiGLU and ReLU^2 are within noise here (1.964 vs 1.967
               bpb); SwiGLU is kept because with it the recipe is exactly Qwen3 (QK-norm, SwiGLU, tied head), which
               both transformers and llama.cpp run (llmlab/model/hf_format.py, gguf_format.py). Every choice is a
               switch (mlp, qk_norm, tie_embeddings, logit_softcap). These are the dataclass defaults.
    "gpt2"     the nanoGPT baseline: learned positions, LayerNorm (no bias), GELU MLP, tied head, no softcap, normal
               init with std 0.02.
    "llama"    exactly what Hugging Face `LlamaForCausalLM` computes: RoPE, RMSNorm, SwiGLU, untied, no QK-norm, no
               softcap, so exporting is a rename of parameters.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from llmlab.errors import LlmlabError

MLP_KINDS = ("swiglu", "relu2", "gelu")
NORM_KINDS = ("rmsnorm", "layernorm")
POS_KINDS = ("rope", "learned")

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "gpt2": {
        "pos_embedding": "learned",
        "norm": "layernorm",
        "mlp": "gelu",
        "qk_norm": False,
        "tie_embeddings": True,
        "logit_softcap": None,
        "zero_init_proj": False,
        "init_std": 0.02,
    },
    "llama": {"mlp": "swiglu", "qk_norm": False, "tie_embeddings": False, "logit_softcap": None, "zero_init_proj": False},
}

_INT_FIELDS = ("vocab_size", "seq_len", "depth", "d_model", "n_heads", "n_kv_heads", "mlp_hidden")
_BOOL_FIELDS = ("qk_norm", "tie_embeddings", "zero_init_proj")
_FLOAT_FIELDS = ("rope_theta", "norm_eps")
_OPTIONAL_FLOAT_FIELDS = ("logit_softcap", "init_std")
_CHOICES = {"mlp": MLP_KINDS, "norm": NORM_KINDS, "pos_embedding": POS_KINDS}


def default_mlp_hidden(mlp: str, d_model: int) -> int:
    """4 * d_model, or for SwiGLU (three matrices instead of two) 8/3 * d_model rounded up to a multiple of 64."""
    if mlp == "swiglu":
        return 64 * math.ceil(8 * d_model / 3 / 64)
    return 4 * d_model


@dataclass(frozen=True)
class ModelConfig:
    """The transformer's shape and switches. Validated on construction; JSON-safe via to_dict / from_dict."""

    vocab_size: int  # embedding rows; must be >= the tokenizer's vocabulary (check_vocab)
    seq_len: int  # longest context: length of the RoPE / learned-position table
    depth: int  # number of transformer blocks (n_layers)
    d_model: int  # residual stream width
    n_heads: int  # query heads; head_dim = d_model // n_heads
    n_kv_heads: int  # key/value heads (grouped-query attention when < n_heads)
    mlp_hidden: int  # MLP inner width
    mlp: str = "swiglu"  # "swiglu" (silu(gate) * up) | "relu2" (relu(x)**2) | "gelu" (tanh approximation, as GPT-2)
    norm: str = "rmsnorm"  # "rmsnorm" | "layernorm" (without bias); both with a learnable gain
    pos_embedding: str = "rope"  # "rope" (rotate-half convention, as Llama) | "learned" (absolute table, as GPT-2)
    qk_norm: bool = True  # RMSNorm over head_dim on queries and keys, before RoPE
    tie_embeddings: bool = True  # lm_head shares the token embedding matrix
    logit_softcap: float | None = None  # logits -> cap * tanh(logits / cap), in float32; None = off (e.g. 15)
    zero_init_proj: bool = True  # attention output (wo) and MLP output (w_down) start at zero
    rope_theta: float = 10000.0  # RoPE base
    norm_eps: float = 1e-5
    init_std: float | None = None  # std of the normal init of weight matrices; None = 1 / sqrt(d_model)

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            _require_positive_int(name, getattr(self, name))
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise LlmlabError(f"model config: {name} must be true or false, got {getattr(self, name)!r}")
        for name in _FLOAT_FIELDS + _OPTIONAL_FLOAT_FIELDS:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL_FLOAT_FIELDS:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                raise LlmlabError(f"model config: {name} must be a positive number, got {value!r}")
            object.__setattr__(self, name, float(value))  # JSON may hold 10000 for 10000.0
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise LlmlabError(f"model config: {name} must be one of {', '.join(choices)}; got {value!r}")
        if self.d_model % self.n_heads:
            raise LlmlabError(
                f"model config: d_model={self.d_model} is not divisible by n_heads={self.n_heads} "
                "(each head gets d_model / n_heads dimensions)"
            )
        if self.n_heads % self.n_kv_heads:
            raise LlmlabError(
                f"model config: n_kv_heads={self.n_kv_heads} does not divide n_heads={self.n_heads} "
                "(each key/value head serves the same number of query heads)"
            )
        if self.pos_embedding == "rope" and self.head_dim % 2:
            raise LlmlabError(
                f"model config: RoPE needs an even head_dim, got head_dim={self.head_dim} "
                f"(d_model={self.d_model} / n_heads={self.n_heads})"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def weight_std(self) -> float:
        """The init std actually used: init_std, or 1 / sqrt(d_model) when unset."""
        return self.init_std if self.init_std is not None else self.d_model**-0.5

    @classmethod
    def from_depth(cls, depth: int, vocab_size: int, seq_len: int, **overrides: Any) -> ModelConfig:
        """Derive width, heads, kv heads and MLP width from `depth` (formula in the module docstring).

        Any field can be overridden; derived values follow the overrides (e.g. d_model=96 gives 3 heads of 32)."""
        _check_names(overrides)
        _require_positive_int("depth", depth)
        d_model = overrides.pop("d_model", 64 * depth)
        _require_positive_int("d_model", d_model)
        head_dim = 32 if d_model < 256 else 64
        n_heads = overrides.pop("n_heads", max(1, d_model // head_dim))
        n_kv_heads = overrides.pop("n_kv_heads", n_heads)
        mlp_hidden = overrides.pop("mlp_hidden", default_mlp_hidden(overrides.get("mlp", cls.mlp), d_model))
        return cls(
            vocab_size=vocab_size,
            seq_len=seq_len,
            depth=depth,
            d_model=d_model,
            n_heads=n_heads,
            n_kv_heads=n_kv_heads,
            mlp_hidden=mlp_hidden,
            **overrides,
        )

    @classmethod
    def preset(cls, name: str, depth: int, *, vocab_size: int, seq_len: int, **overrides: Any) -> ModelConfig:
        """A named recipe (see PRESETS) at a given depth; overrides win over the preset."""
        if name not in PRESETS:
            raise LlmlabError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}")
        _check_names(overrides)
        return cls.from_depth(depth, vocab_size, seq_len, **{**PRESETS[name], **overrides})

    def check_vocab(self, tokenizer_vocab_size: int) -> None:
        """Raise unless every id of a tokenizer with `tokenizer_vocab_size` tokens has an embedding row."""
        if self.vocab_size < tokenizer_vocab_size:
            raise LlmlabError(
                f"model vocab_size={self.vocab_size} is smaller than the tokenizer's {tokenizer_vocab_size} tokens: "
                f"ids >= {self.vocab_size} would have no embedding row; set vocab_size >= {tokenizer_vocab_size}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict of every field (saved next to checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of to_dict; unknown or missing fields raise LlmlabError naming them."""
        if not isinstance(data, dict):
            raise LlmlabError(f"model config must be a mapping of fields, got {type(data).__name__}")
        _check_names(data)
        missing = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.name not in data]
        if missing:
            raise LlmlabError(f"model config is missing field(s): {', '.join(missing)}")
        return cls(**data)


def _check_names(fields: dict[str, Any]) -> None:
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise LlmlabError(f"unknown model config field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def _require_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LlmlabError(f"model config: {name} must be a positive integer, got {value!r}")
