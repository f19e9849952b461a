"""The decoder-only transformer and its KV cache.

Layout and parameter names follow Hugging Face `LlamaForCausalLM`, so exporting the "llama" preset is a rename:

    embed.weight                                   (vocab_size, d_model)   model.embed_tokens.weight
    pos_embed.weight                               (seq_len, d_model)      only with pos_embedding="learned"
    blocks.{i}.attn_norm.weight                    (d_model,)              model.layers.{i}.input_layernorm.weight
    blocks.{i}.attn.wq / wk / wv / wo .weight      (out, in)               ...self_attn.q_proj / k_ / v_ / o_proj
    blocks.{i}.attn.q_norm / k_norm .weight        (head_dim,)             only with qk_norm (as Qwen3)
    blocks.{i}.mlp_norm.weight                     (d_model,)              ...post_attention_layernorm.weight
    blocks.{i}.mlp.w_gate / w_up / w_down .weight  (out, in)               ...mlp.gate_proj / up_ / down_proj
    norm.weight                                    (d_model,)              model.norm.weight
    lm_head.weight                                 (vocab_size, d_model)   absent when tie_embeddings

No biases anywhere; every block matrix is a 2-D nn.Linear weight (the optimizer puts Muon on those). RoPE uses the
rotate-half convention on the natural head layout (head h = rows h*head_dim..(h+1)*head_dim of wq), and grouped-query
attention shares kv head j among query heads j*g..(j+1)*g-1 (g = n_heads / n_kv_heads), as HF's `repeat_kv`.

Shapes: B batch, T new tokens, S = positions attended (T, or cache.pos + T), H n_heads, K n_kv_heads, D head_dim,
C d_model, V vocab_size. Everything is dtype-agnostic (bf16 autocast works); logits and the loss are float32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmlab.errors import LlmlabError
from llmlab.model.config import ModelConfig
from llmlab.model.elementwise import apply_rope, relu_squared, rms_norm, rope_tables
from llmlab.model.linear_cross_entropy import linear_cross_entropy


class RMSNorm(nn.Module):
    """x / rms(x) * weight over the last dimension (llmlab.model.elementwise.rms_norm); the gain starts at 1."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.weight, self.eps)


def _norm(cfg: ModelConfig, dim: int) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(dim, cfg.norm_eps)
    return nn.LayerNorm(dim, eps=cfg.norm_eps, bias=False)


class KVCache:
    """Keys and values of every layer for positions 0..pos-1, preallocated as (n_layers, B, K, max_len, D).

    `Transformer.forward(idx, kv_cache=cache)` writes the new tokens' keys/values at pos.. and advances pos. Use it
    under torch.no_grad(). All rows of the batch share one position counter, an int.

    With per_row=True each row has its own counter: pos is a LongTensor (batch_size,), and a forward works on the
    rows `cache.rows` (a slice, all rows by default; idx then has that many rows), each row's new tokens going to its
    own positions. That is what a continuous-batching engine needs: a new request is prefilled alone into a free row
    (rows = slice(r, r + 1), pos[r] = 0) and then decoded with the others. Slots a row has not written (or that a
    previous occupant left behind) lie beyond its position and are masked out, so rows never see each other's data.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        batch_size: int,
        max_len: int | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        per_row: bool = False,
    ) -> None:
        max_len = cfg.seq_len if max_len is None else max_len
        if not 1 <= max_len <= cfg.seq_len:
            raise LlmlabError(f"KV cache max_len={max_len} must be between 1 and the model's seq_len={cfg.seq_len}")
        shape = (cfg.depth, batch_size, cfg.n_kv_heads, max_len, cfg.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)  # (L, B, K, max_len, D)
        self.v = torch.zeros(shape, dtype=dtype, device=device)  # (L, B, K, max_len, D)
        self.pos: int | Tensor = torch.zeros(batch_size, dtype=torch.long, device=device) if per_row else 0
        self.rows = slice(0, batch_size)  # per-row caches: the rows the next forward reads and writes
        self._positions: Tensor | None = None  # per-row: (B', T) positions of the forward in progress
        self._span = 0  # per-row: slots the forward in progress attends (the furthest selected row's pos + T)

    @property
    def per_row(self) -> bool:
        return isinstance(self.pos, Tensor)

    @property
    def batch_size(self) -> int:
        return self.k.shape[1]

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    def reset(self) -> None:
        """Forget every position (the buffers are kept and overwritten)."""
        if self.per_row:
            self.pos.zero_()
        else:
            self.pos = 0

    def positions(self, T: int) -> tuple[Tensor, int]:
        """Per-row caches: the positions (B', T) that T new tokens of the selected rows take, and the number of slots
        S they attend (the furthest row's pos + T); both remembered for update. One host sync per forward."""
        start = self.pos[self.rows]  # (B',)
        self._positions = start[:, None] + torch.arange(T, device=start.device)  # (B', T)
        self._span = int(start.max()) + T
        return self._positions, self._span

    def move_row(self, src: int, dst: int) -> None:
        """Per-row caches: copy row src (its cached positions and counter) into row dst (to keep used rows packed)."""
        n = int(self.pos[src])
        self.k[:, dst, :, :n] = self.k[:, src, :, :n]
        self.v[:, dst, :, :n] = self.v[:, src, :, :n]
        self.pos[dst] = n

    def expand(self, n: int) -> KVCache:
        """A new cache with each row repeated n times (row b -> rows b*n..b*n+n-1), e.g. one prompt -> n samples."""
        new = KVCache.__new__(KVCache)
        new.k = self.k.repeat_interleave(n, dim=1)  # (L, B*n, K, max_len, D)
        new.v = self.v.repeat_interleave(n, dim=1)
        new.pos = self.pos.repeat_interleave(n) if self.per_row else self.pos
        new.rows, new._positions = slice(0, new.batch_size), None
        return new

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v (B, K, T, D) at positions pos..pos+T-1 of `layer`; return keys/values (B, K, pos+T, D).

        Per-row caches: rows `self.rows`, each at its own positions (set by `positions`); the keys/values returned span
        (B', K, S, D) with S = the furthest selected row's pos+T (the forward masks what each row must not see).
        """
        if self.per_row:
            pos = self._positions  # (B', T)
            k_all, v_all = self.k[layer, self.rows], self.v[layer, self.rows]  # views (B', K, max_len, D)
            row = torch.arange(pos.shape[0], device=pos.device)[:, None]  # (B', 1)
            k_all[row, :, pos] = k.transpose(1, 2)  # the indexed view is (B', T, K, D)
            v_all[row, :, pos] = v.transpose(1, 2)
            return k_all[:, :, : self._span], v_all[:, :, : self._span]
        end = self.pos + k.shape[2]
        self.k[layer, :, :, self.pos : end] = k
        self.v[layer, :, :, self.pos : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


def _masked_decode_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(D), masked) v for one query per row: q (B, H, 1, D), k and v (B, K, S, D), mask
    (B, 1, 1, S) bool (True = attend); (B, H, 1, D). The query heads sharing a kv head are one matrix product's rows.

    Same result as scaled_dot_product_attention with the mask, which on the CPU runs its blocked kernel for the
    single query: 0.6x its time at 8 streams of SmolLM2, 0.86x at 64 rows of the default model (docs/LOG.md)."""
    B, H, _, D = q.shape
    K = k.shape[1]
    scores = torch.matmul(q.view(B, K, H // K, D), k.transpose(-1, -2)).mul_(D**-0.5)  # (B, K, H/K, S)
    weights = scores.masked_fill_(~mask, -torch.inf).softmax(dim=-1)
    return torch.matmul(weights, v).view(B, H, 1, D)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.wq = nn.Linear(cfg.d_model, cfg.n_heads * cfg.head_dim, bias=False)
        self.wk = nn.Linear(cfg.d_model, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.wv = nn.Linear(cfg.d_model, cfg.n_kv_heads * cfg.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.d_model, bias=False)
        if cfg.qk_norm:  # RMSNorm per head over head_dim, one gain shared by all heads (as Qwen3)
            self.q_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)
            self.k_norm = RMSNorm(cfg.head_dim, cfg.norm_eps)
        self.qk_norm = cfg.qk_norm

    def forward(
        self,
        x: Tensor,
        rope: tuple[Tensor, Tensor] | None,
        cache: KVCache | None,
        layer: int,
        mask: Tensor | None,
        is_causal: bool,
    ) -> Tensor:
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim)  # (B, T, H, D)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_dim)  # (B, T, K, D)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim)  # (B, T, K, D)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, D), (B, K, T, D) x2
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, K, S, D)
            k, v = k.to(q.dtype), v.to(q.dtype)
        # Grouped-query attention inside the kernel (query head h reads kv head h // (H / K)), without copying each
        # kv head H / K times: on the CPU that copy of the whole cache cost more than the attention itself.
        if T == 1 and mask is not None:  # one new token per row of a per-row cache (the batching engine's decode)
            y = _masked_decode_attention(q, k, v, mask)
        else:
            gqa = self.n_kv_heads != self.n_heads
            y = F.scaled_dot_product_attention(q, k, v, mask, is_causal=is_causal, enable_gqa=gqa)  # (B, H, T, D)
        return self.wo(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.kind = cfg.mlp
        if cfg.mlp == "swiglu":
            self.w_gate = nn.Linear(cfg.d_model, cfg.mlp_hidden, bias=False)
        self.w_up = nn.Linear(cfg.d_model, cfg.mlp_hidden, bias=False)
        self.w_down = nn.Linear(cfg.mlp_hidden, cfg.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = self.w_up(x)  # (B, T, mlp_hidden)
        if self.kind == "swiglu":
            h = F.silu(self.w_gate(x)) * h
        elif self.kind == "relu2":
            h = relu_squared(h)
        else:
            h = F.gelu(h, approximate="tanh")
        return self.w_down(h)  # (B, T, C)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = _norm(cfg, cfg.d_model)
        self.attn = Attention(cfg)
        self.mlp_norm = _norm(cfg, cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(
        self,
        x: Tensor,  # (B, T, C)
        rope: tuple[Tensor, Tensor] | None,
        cache: KVCache | None,
        layer: int,
        mask: Tensor | None,
        is_causal: bool,
    ) -> Tensor:
        x = x + self.attn(self.attn_norm(x), rope, cache, layer, mask, is_causal)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    """Decoder-only language model. `forward` returns (logits, loss); see its docstring."""

    def __init__(self, cfg: ModelConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.pos_embedding == "learned":
            self.pos_embed = nn.Embedding(cfg.seq_len, cfg.d_model)
        else:  # not saved in the state dict: recomputed from the config, as HF Llama does
            cos, sin = rope_tables(cfg.seq_len, cfg.head_dim, cfg.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)  # (seq_len, D)
            self.register_buffer("rope_sin", sin, persistent=False)  # (seq_len, D)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = _norm(cfg, cfg.d_model)
        if not cfg.tie_embeddings:
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.quantized_head: nn.Module | None = None  # set by llmlab.model.quantize for int8 inference
        self.init_weights(seed)

    @torch.no_grad()
    def init_weights(self, seed: int) -> None:
        """Deterministic init, the same on any device (drawn on the CPU from a generator seeded with `seed`).

        Matrices: normal(0, cfg.weight_std); 1/sqrt(d_model) by default keeps each projection's output at the scale of
        its input whatever the width, 0.02 is GPT-2's. Output projections (wo, w_down) are zero when zero_init_proj
        (each block starts as the identity), else scaled by 1/sqrt(2 * depth) as GPT-2 does, so the residual stream
        does not grow with depth. Token (and position) embeddings: std 1.0 when untied, because every block and the
        head read the stream through a norm, so only its scale relative to the block outputs matters and unit scale
        makes the first updates small relative to it; when tied the embedding is also the head, and std 1.0 would
        give logits of std sqrt(d_model), so it gets weight_std. Norm gains start at 1.
        """
        cfg = self.cfg
        gen = torch.Generator().manual_seed(seed)
        std = cfg.weight_std
        embed_std = std if cfg.tie_embeddings else 1.0
        for name, p in self.named_parameters():
            if p.dim() == 1:  # norm gains
                p.fill_(1.0)
                continue
            if name.endswith(("attn.wo.weight", "mlp.w_down.weight")):
                if cfg.zero_init_proj:
                    p.zero_()
                    continue
                scale = std / math.sqrt(2 * cfg.depth)
            elif name in ("embed.weight", "pos_embed.weight"):
                scale = embed_std
            else:
                scale = std
            p.copy_(torch.randn(p.shape, generator=gen) * scale)

    def make_kv_cache(
        self, batch_size: int, max_len: int | None = None, dtype: torch.dtype | None = None, per_row: bool = False
    ) -> KVCache:
        """An empty KVCache on this model's device (dtype defaults to the model's parameter dtype)."""
        p = self.embed.weight
        return KVCache(self.cfg, batch_size, max_len, dtype=dtype or p.dtype, device=p.device, per_row=per_row)

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        loss_mask: Tensor | None = None,
        kv_cache: KVCache | None = None,
        last_only: bool = False,
        return_logits: bool = True,
    ) -> tuple[Tensor | None, Tensor | None]:
        """Logits (B, T, V) float32 for token ids idx (B, T), and the loss when targets (B, T) are given.

        loss: mean cross-entropy over positions whose target is not -1 and, if loss_mask (B, T) is given, whose mask
        is nonzero; 0 when no position counts. With kv_cache, idx holds the tokens at positions cache.pos..; the cache
        is updated and cache.pos advanced by T. last_only: logits (B, 1, V) of the last position only, all sampling
        needs after a prefill (the head over every position is ~1/5 of a SmolLM2 prefill); no targets then.
        return_logits=False (trainers that want only the loss): logits may come back None; on the CPU, when training
        with targets, the head and the loss then run fused over row chunks (llmlab.model.linear_cross_entropy),
        never making the (B, T, V) logits.
        """
        cfg = self.cfg
        if idx.dim() != 2:
            raise LlmlabError(f"model input must be token ids of shape (batch, time), got shape {tuple(idx.shape)}")
        B, T = idx.shape
        shapes = [] if targets is None else [targets.shape] + ([] if loss_mask is None else [loss_mask.shape])
        if any(shape != idx.shape for shape in shapes):
            raise LlmlabError(
                f"targets / loss_mask must have the input's shape {tuple(idx.shape)}, got "
                f"{tuple(targets.shape)} / {None if loss_mask is None else tuple(loss_mask.shape)}"
            )
        if last_only and targets is not None:
            raise LlmlabError("last_only gives the last position's logits: pass no targets with it")
        if kv_cache is not None and kv_cache.per_row:
            if targets is not None:
                raise LlmlabError("a per-row KV cache is for inference: pass no targets with it")
            return self._forward_per_row(idx, kv_cache, last_only), None
        start = 0 if kv_cache is None else kv_cache.pos
        if kv_cache is None and T > cfg.seq_len:
            raise LlmlabError(
                f"sequence of {T} tokens is longer than the model's seq_len={cfg.seq_len} "
                f"(the length of its {'RoPE' if cfg.pos_embedding == 'rope' else 'position'} table)"
            )
        if kv_cache is not None:
            if start + T > kv_cache.max_len:
                raise LlmlabError(
                    f"KV cache overflow: {start} cached + {T} new tokens exceed its max_len={kv_cache.max_len}"
                )
            if B != kv_cache.batch_size:
                raise LlmlabError(f"batch of {B} rows does not match the KV cache's batch_size={kv_cache.batch_size}")

        positions = torch.arange(start, start + T, device=idx.device)  # (T,)
        x, rope = self._embed(idx, positions)
        # Which cached keys each new query sees: a square causal mask when nothing is cached before the new tokens,
        # everything when decoding one token, and an explicit (T, S) mask for a chunk after a prefill.
        mask, is_causal = None, True
        if start > 0:
            is_causal = False
            if T > 1:
                q_pos = torch.arange(start, start + T, device=idx.device)[:, None]  # (T, 1)
                mask = torch.arange(start + T, device=idx.device)[None, :] <= q_pos  # (T, S) bool, True = attend
        x = self._blocks(x, rope, kv_cache, mask, is_causal, last_only)  # (B, T or 1, C)
        if kv_cache is not None:
            kv_cache.pos += T
        if targets is None:
            return self._head(x), None
        counted = targets != -1  # (B, T)
        if loss_mask is not None:
            counted = counted & (loss_mask != 0)
        # Fused on the CPU only: there the logits' memory traffic dominates (see linear_cross_entropy); on a GPU the
        # plain path is what was measured (and torch.compile fuses its elementwise work).
        if not return_logits and idx.device.type == "cpu" and torch.is_grad_enabled() and cfg.logit_softcap is None:
            row_weights = counted.view(-1) / counted.sum().clamp_min(1)  # (B*T,): the mean over counted positions
            return None, linear_cross_entropy(x.reshape(B * T, -1), self._head_weight(), targets.reshape(-1),
                                              row_weights)
        logits = self._head(x)  # (B, T, V)
        ce = F.cross_entropy(logits.view(B * T, -1), targets.reshape(-1), ignore_index=-1, reduction="none")
        return logits, (ce * counted.view(-1)).sum() / counted.sum().clamp_min(1)

    def hidden_states(self, idx: Tensor) -> Tensor:
        """The final-normed hidden states (B, T, C) of token ids idx (B, T): what the head reads, for models that put
        another head on the trunk (e.g. a verifier's value head)."""
        if idx.dim() != 2 or idx.shape[1] > self.cfg.seq_len:
            raise LlmlabError(f"hidden_states needs ids of shape (batch, time <= {self.cfg.seq_len}), got "
                              f"{tuple(idx.shape)}")
        x, rope = self._embed(idx, torch.arange(idx.shape[1], device=idx.device))
        return self._blocks(x, rope, None, None, True)

    def _embed(self, idx: Tensor, positions: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """Token (+ learned position) embeddings (B, T, C) and the RoPE rows, for positions (T,) or (B, T)."""
        x = self.embed(idx)  # (B, T, C)
        if self.cfg.pos_embedding == "learned":
            return x + self.pos_embed(positions), None  # (B, T, C)
        return x, (self.rope_cos[positions], self.rope_sin[positions])  # (T, D) or (B, T, D) each

    def _blocks(
        self, x: Tensor, rope: tuple[Tensor, Tensor] | None, kv_cache: KVCache | None, mask: Tensor | None,
        is_causal: bool, last_only: bool = False,
    ) -> Tensor:
        """The final-normed hidden states (B, T, C) of the embedded tokens x (B, T, C); (B, 1, C) of the last one
        with last_only."""
        for layer, block in enumerate(self.blocks):
            x = block(x, rope, kv_cache, layer, mask, is_causal)
        return self.norm(x[:, -1:] if last_only else x)

    def _head_weight(self) -> Tensor:
        return self.embed.weight if self.cfg.tie_embeddings else self.lm_head.weight  # (V, C)

    def _head(self, x: Tensor) -> Tensor:
        """Float32 logits (B, T, V) of hidden states x (B, T, C)."""
        if self.quantized_head is not None:  # llmlab.model.quantize: an int8 copy of the head matrix
            logits = self.quantized_head(x)
        else:
            logits = F.linear(x, self._head_weight()).float()  # (B, T, V)
        if self.cfg.logit_softcap is not None:
            # In place on the fresh matmul output (autograd does not keep it), and a multiply instead of a divide:
            # on the CPU these (B, T, V) passes cost as much as a matmul, so each pass saved shows in tokens/s.
            logits = torch.tanh(logits.mul_(1.0 / self.cfg.logit_softcap)) * self.cfg.logit_softcap
        return logits

    def _forward_per_row(self, idx: Tensor, cache: KVCache, last_only: bool = False) -> Tensor:
        """Logits (B', T, V) (or (B', 1, V) with last_only) for idx (B', T) appended to the rows `cache.rows` of a
        per-row cache, each at its pos."""
        B, T = idx.shape
        n_rows = len(range(cache.batch_size)[cache.rows])
        if B != n_rows:
            raise LlmlabError(f"batch of {B} rows does not match the {n_rows} KV cache rows selected ({cache.rows})")
        positions, furthest = cache.positions(T)  # (B', T), S
        if furthest > cache.max_len:
            raise LlmlabError(f"KV cache overflow: a row would reach position {furthest}, past max_len={cache.max_len}")
        x, rope = self._embed(idx, positions)
        # Row b's query at position p sees the slots 0..p of its own row: everything beyond is another step's future
        # or stale data from the row's previous occupant.
        slots = torch.arange(furthest, device=idx.device)  # (S,)
        mask = slots[None, None, None, :] <= positions[:, None, :, None]  # (B', 1, T, S) bool, True = attend
        logits = self._head(self._blocks(x, rope, cache, mask, False, last_only))
        cache.pos[cache.rows] += T
        return logits
