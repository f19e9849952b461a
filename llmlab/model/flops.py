"""Parameter counts, training FLOPs per token and generation FLOPs, computed from a ModelConfig alone (no module is
built).

flops_per_token follows the PaLM paper's convention (appendix B), which nanoGPT's MFU estimate also uses:

    6 * N  +  12 * n_layers * d_model * seq_len

    N         the parameters that take part in a matrix multiply: every block matrix (wq, wk, wv, wo, MLP) plus the
              output head's vocab_size * d_model, counted whether or not it is tied to the embedding (the head
              matmul runs either way). Not counted: the token and position embedding lookups (no multiply), norm
              gains, RoPE, activations, softmax, softcap and the loss (all elementwise, a few percent at most).
    6         2 FLOPs (multiply + add) per parameter per token forward, and twice that backward.
    12 * ...  attention's two matmuls (q @ k^T and weights @ v), 2 * 2 * d_model FLOPs per attended position
              forward, times 3 for forward + backward. Each query is counted against the full seq_len keys, as PaLM
              does, although under the causal mask a query attends (seq_len + 1) / 2 positions on average and the
              fused kernels skip most of the masked half: MFU computed with this number is comparable with
              published ones, and overstates the attention work actually done by up to 2x.
"""

from __future__ import annotations

from llmlab.model.config import ModelConfig


def _block_matrix_params(cfg: ModelConfig) -> int:
    """Weights of the matrices in one block (no norm gains)."""
    kv_width = cfg.n_kv_heads * cfg.head_dim
    attn = 2 * cfg.d_model * cfg.d_model + 2 * cfg.d_model * kv_width  # wq, wo; wk, wv
    mlp = (3 if cfg.mlp == "swiglu" else 2) * cfg.d_model * cfg.mlp_hidden  # (w_gate,) w_up, w_down
    return attn + mlp


def count_params(cfg: ModelConfig) -> dict[str, int]:
    """{"total", "embedding", "non_embedding", "head"} for a model built from cfg; total == sum of p.numel().

    embedding: token embedding plus the learned position table if any. head: the untied lm_head (0 when tied, its
    weights being the embedding's). non_embedding: everything else (block matrices and all norm gains).
    """
    embedding = cfg.vocab_size * cfg.d_model + (cfg.seq_len * cfg.d_model if cfg.pos_embedding == "learned" else 0)
    head = 0 if cfg.tie_embeddings else cfg.vocab_size * cfg.d_model
    block_norms = 2 * cfg.d_model + (2 * cfg.head_dim if cfg.qk_norm else 0)  # attn_norm, mlp_norm, (q_norm, k_norm)
    non_embedding = cfg.depth * (_block_matrix_params(cfg) + block_norms) + cfg.d_model  # + final norm
    return {
        "total": embedding + head + non_embedding,
        "embedding": embedding,
        "non_embedding": non_embedding,
        "head": head,
    }


def flops_per_token(cfg: ModelConfig, seq_len: int | None = None, lora_rank: int = 0) -> float:
    """Training FLOPs (forward + backward) per token at context seq_len (default cfg.seq_len); see the module doc.

    lora_rank > 0: LoRA fine-tuning (llmlab.model.lora) of rank lora_rank. The model's matrices are frozen, so their
    weight gradients are never computed: 4 FLOPs per parameter per token (forward, and the gradient for the input),
    not 6. The adapters, rank x (in + out) parameters per block matrix, cost 6 each. Attention is unchanged (the
    gradient flows through it to the adapters below)."""
    seq_len = cfg.seq_len if seq_len is None else seq_len
    matmul_params = cfg.depth * _block_matrix_params(cfg) + cfg.vocab_size * cfg.d_model
    attention = 12 * cfg.depth * cfg.d_model * seq_len
    if not lora_rank:
        return float(6 * matmul_params + attention)
    kv_width = cfg.n_kv_heads * cfg.head_dim
    shapes = [(cfg.d_model, cfg.d_model)] * 2 + [(cfg.d_model, kv_width)] * 2  # wq, wo; wk, wv
    shapes += [(cfg.d_model, cfg.mlp_hidden)] * (3 if cfg.mlp == "swiglu" else 2)
    adapters = cfg.depth * sum(lora_rank * (rows + cols) for rows, cols in shapes)
    return float(4 * matmul_params + 6 * adapters + attention)


def generation_flops(cfg: ModelConfig, prompt_tokens: int, new_tokens: int) -> float:
    """Forward FLOPs of generating new_tokens after a prompt of prompt_tokens with a KV cache (prefill + decode), as
    llmlab's engine runs it.

    The fed tokens are the prompt and every new token but the last (sampled, never fed): F = prompt_tokens +
    new_tokens - 1. Each costs 2 FLOPs per block-matrix parameter, plus attention over the positions it really
    attends under the causal mask, 4 * n_layers * d_model per position (q @ k^T and weights @ v; the t-th token
    attends t positions). The output head (2 * vocab_size * d_model) runs only where logits are needed: once per new
    token (prefill computes the last position's alone). Sampling, norms and embedding lookups are not counted."""
    if new_tokens < 1:
        return 0.0
    fed = prompt_tokens + new_tokens - 1
    blocks = 2 * cfg.depth * _block_matrix_params(cfg) * fed
    attention = 2 * cfg.depth * cfg.d_model * fed * (fed + 1)
    return float(blocks + attention + 2 * cfg.vocab_size * cfg.d_model * new_tokens)


def scoring_flops(cfg: ModelConfig, tokens: int) -> float:
    """Forward FLOPs of reading `tokens` tokens once without the vocabulary head (a verifier scoring a solution: its
    scalar head is negligible): the block matrices and causal attention, as generation_flops counts them."""
    return float(2 * cfg.depth * _block_matrix_params(cfg) * tokens + 2 * cfg.depth * cfg.d_model * tokens * (tokens + 1))
