"""Tests for llmlab.model: config and depth dial, the transformer, its KV cache, and parameter/FLOP counts.

Every model here is tiny (width 32, 2 layers, vocab 64) so the file runs in a few seconds on a CPU.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from llmlab.errors import LlmlabError
from llmlab.model.config import ModelConfig
from llmlab.model.elementwise import apply_rope, rms_norm, rope_tables
from llmlab.model.flops import count_params, flops_per_token
from llmlab.model.linear_cross_entropy import linear_cross_entropy
from llmlab.model.lora import add_lora
from llmlab.model.transformer import KVCache, Transformer

V, T_MAX = 64, 24


def tiny(preset: str = "default", **overrides) -> ModelConfig:
    """2 layers of width 32, 4 heads of 8; projections randomly initialised unless overridden, so attention and the
    MLPs actually contribute (zero-init projections would make every cache test pass trivially)."""
    fields = {"d_model": 32, "n_heads": 4, "zero_init_proj": False, **overrides}
    return ModelConfig.preset(preset, 2, vocab_size=V, seq_len=T_MAX, **fields)


def tokens(B: int, T: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


# Configs covering every switch; each must run, cache and count correctly.
VARIANTS = {
    "default": tiny(),
    "gpt2": tiny("gpt2"),
    "llama": tiny("llama"),
    "gqa": tiny(n_kv_heads=2),
    "mqa_relu2_learned": tiny(n_kv_heads=1, mlp="relu2", pos_embedding="learned"),
    "gelu_layernorm_tied": tiny(mlp="gelu", norm="layernorm", tie_embeddings=True, logit_softcap=None),
    "no_qk_norm_zero_init": tiny(qk_norm=False, zero_init_proj=True, mlp_hidden=48, rope_theta=500.0),
    "untied_softcap": tiny(tie_embeddings=False, logit_softcap=15.0),
}


# ---- config -------------------------------------------------------------------------------------------------------


def test_depth_dial_derives_width_heads_and_mlp():
    cfg = ModelConfig.from_depth(4, 4096, 512)
    assert (cfg.depth, cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim) == (4, 256, 4, 4, 64)
    assert cfg.mlp == "swiglu" and cfg.mlp_hidden == 704  # 8/3 * 256 = 682.7 -> 704
    small = ModelConfig.from_depth(2, 4096, 512)
    assert (small.d_model, small.n_heads, small.head_dim) == (128, 4, 32)
    assert ModelConfig.from_depth(4, 4096, 512, mlp="relu2").mlp_hidden == 1024
    # derived values follow overrides
    over = ModelConfig.from_depth(4, 4096, 512, d_model=96, n_kv_heads=1, mlp="relu2")
    assert (over.d_model, over.n_heads, over.n_kv_heads, over.mlp_hidden) == (96, 3, 1, 384)


def test_presets():
    default = ModelConfig.preset("default", 4, vocab_size=4096, seq_len=256)
    assert default == ModelConfig.from_depth(4, 4096, 256)
    assert (default.pos_embedding, default.norm, default.mlp) == ("rope", "rmsnorm", "swiglu")
    assert default.qk_norm and default.tie_embeddings and default.zero_init_proj
    assert default.logit_softcap is None and default.weight_std == 256**-0.5
    llama = ModelConfig.preset("llama", 4, vocab_size=4096, seq_len=256)
    assert not llama.tie_embeddings and llama.mlp == "swiglu" and not llama.qk_norm
    gpt2 = ModelConfig.preset("gpt2", 4, vocab_size=4096, seq_len=256)
    assert (gpt2.pos_embedding, gpt2.norm, gpt2.mlp) == ("learned", "layernorm", "gelu")
    assert gpt2.tie_embeddings and gpt2.logit_softcap is None and not gpt2.zero_init_proj and gpt2.weight_std == 0.02
    assert ModelConfig.preset("gpt2", 4, vocab_size=4096, seq_len=256, mlp="relu2").mlp == "relu2"
    with pytest.raises(LlmlabError, match="unknown model preset 'nope'.*default, gpt2"):
        ModelConfig.preset("nope", 4, vocab_size=4096, seq_len=256)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"d_model": 30}, r"d_model=30 is not divisible by n_heads=4"),
        ({"n_kv_heads": 3}, r"n_kv_heads=3 does not divide n_heads=4"),
        ({"d_model": 36, "n_heads": 4}, r"RoPE needs an even head_dim, got head_dim=9"),
        ({"mlp": "tanh"}, r"mlp must be one of swiglu, relu2, gelu; got 'tanh'"),
        ({"norm": "batchnorm"}, r"norm must be one of"),
        ({"pos_embedding": "alibi"}, r"pos_embedding must be one of"),
        ({"n_heads": 0}, r"n_heads must be a positive integer, got 0"),
        ({"mlp_hidden": 2.5}, r"mlp_hidden must be a positive integer"),
        ({"qk_norm": 1}, r"qk_norm must be true or false"),
        ({"logit_softcap": -1.0}, r"logit_softcap must be a positive number"),
        ({"rope_theta": float("nan")}, r"rope_theta must be a positive number"),
        ({"n_layers": 3}, r"unknown model config field\(s\): n_layers"),
    ],
)
def test_bad_configs_raise(overrides, message):
    with pytest.raises(LlmlabError, match=message):
        tiny(**overrides)


def test_bad_depth_and_learned_positions_allow_odd_head_dim():
    with pytest.raises(LlmlabError, match="depth must be a positive integer, got 0"):
        ModelConfig.from_depth(0, V, T_MAX)
    assert tiny(d_model=36, pos_embedding="learned").head_dim == 9


def test_check_vocab():
    cfg = tiny()
    cfg.check_vocab(V)
    cfg.check_vocab(V - 10)
    with pytest.raises(LlmlabError, match=r"vocab_size=64 is smaller than the tokenizer's 65 tokens"):
        cfg.check_vocab(V + 1)


@pytest.mark.parametrize("name", VARIANTS)
def test_config_json_round_trip(name):
    cfg = VARIANTS[name]
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    as_ints = {**cfg.to_dict(), "rope_theta": 10000}  # a hand-written file may drop the ".0"
    assert ModelConfig.from_dict(as_ints).rope_theta == 10000.0


def test_from_dict_names_unknown_and_missing_fields():
    data = tiny().to_dict()
    with pytest.raises(LlmlabError, match="unknown model config field.*: colour"):
        ModelConfig.from_dict({**data, "colour": "red"})
    del data["d_model"], data["seq_len"]
    with pytest.raises(LlmlabError, match="missing field.*seq_len, d_model"):
        ModelConfig.from_dict(data)


# ---- module layout, counts, init ----------------------------------------------------------------------------------


def _names(cfg: ModelConfig) -> set[str]:
    return {name for name, _ in Transformer(cfg).named_parameters()}


def test_parameter_names_are_llama_compatible():
    block = {f"blocks.{i}.{n}.weight" for i in range(2) for n in ("attn_norm", "mlp_norm", "mlp.w_up", "mlp.w_down")}
    block |= {f"blocks.{i}.attn.{w}.weight" for i in range(2) for w in ("wq", "wk", "wv", "wo")}
    qk = {f"blocks.{i}.attn.{n}.weight" for i in range(2) for n in ("q_norm", "k_norm")}
    gate = {f"blocks.{i}.mlp.w_gate.weight" for i in range(2)}
    assert _names(VARIANTS["default"]) == {"embed.weight", "norm.weight"} | block | qk | gate
    assert _names(VARIANTS["untied_softcap"]) == {"embed.weight", "norm.weight", "lm_head.weight"} | block | qk | gate
    assert _names(VARIANTS["llama"]) == {"embed.weight", "norm.weight", "lm_head.weight"} | block | gate
    assert _names(VARIANTS["gpt2"]) == {"embed.weight", "pos_embed.weight", "norm.weight"} | block
    model = Transformer(VARIANTS["llama"])
    assert all(p.dim() == 2 for n, p in model.named_parameters() if n.startswith("blocks.") and "norm" not in n)
    assert set(model.state_dict()) == _names(VARIANTS["llama"])  # RoPE tables are not saved


@pytest.mark.parametrize("name", VARIANTS)
def test_count_params_matches_module(name):
    cfg = VARIANTS[name]
    model = Transformer(cfg)
    counts = count_params(cfg)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["embedding"] == model.embed.weight.numel() + (
        model.pos_embed.weight.numel() if cfg.pos_embedding == "learned" else 0
    )
    assert counts["head"] == (0 if cfg.tie_embeddings else model.lm_head.weight.numel())
    assert counts["total"] == counts["embedding"] + counts["non_embedding"] + counts["head"]


def test_flops_per_token_by_hand():
    cfg = tiny(n_kv_heads=2, mlp="swiglu", mlp_hidden=64, tie_embeddings=True)  # width 32, head_dim 8, 2 layers
    per_layer = 32 * 32 * 2 + 32 * 16 * 2 + 3 * 32 * 64  # wq, wo; wk, wv (2 kv heads of 8); gate, up, down
    matmul = 2 * per_layer + V * 32  # the tied head still multiplies
    assert flops_per_token(cfg, 10) == 6 * matmul + 12 * 2 * 32 * 10
    assert flops_per_token(cfg) == 6 * matmul + 12 * 2 * 32 * T_MAX
    adapters = sum(p.numel() for p in add_lora(Transformer(cfg), rank=4, alpha=8.0))  # r * (in + out) per matrix
    assert adapters == 2 * 4 * (2 * (32 + 32) + 2 * (32 + 16) + 3 * (32 + 64))
    assert flops_per_token(cfg, 10, lora_rank=4) == 4 * matmul + 6 * adapters + 12 * 2 * 32 * 10


def test_init_is_deterministic_and_follows_the_switches():
    cfg = VARIANTS["default"]
    a, b, c = Transformer(cfg, seed=1), Transformer(cfg, seed=1), Transformer(cfg, seed=2)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
        assert pa.dim() == 1 or not torch.equal(pa, pc), name
    b.init_weights(2)
    assert all(torch.equal(pb, pc) for pb, pc in zip(b.parameters(), c.parameters()))
    zero = Transformer(VARIANTS["no_qk_norm_zero_init"])
    assert not zero.blocks[0].attn.wo.weight.any() and not zero.blocks[1].mlp.w_down.weight.any()
    assert zero.blocks[0].attn.wq.weight.std().item() == pytest.approx(32**-0.5, rel=0.15)
    assert torch.equal(zero.norm.weight, torch.ones(32))
    gpt2 = Transformer(VARIANTS["gpt2"])
    assert gpt2.embed.weight.std().item() == pytest.approx(0.02, rel=0.1)  # tied: the head's scale
    assert a.embed.weight.std().item() == pytest.approx(32**-0.5, rel=0.15)  # tied: the head's scale
    untied = Transformer(VARIANTS["untied_softcap"])
    assert untied.embed.weight.std().item() == pytest.approx(1.0, rel=0.1)  # untied


# ---- forward ------------------------------------------------------------------------------------------------------


def test_forward_shapes_and_loss():
    model = Transformer(VARIANTS["untied_softcap"])
    idx, targets = tokens(3, 10), tokens(3, 10, seed=1)
    logits, loss = model(idx)
    assert logits.shape == (3, 10, V) and logits.dtype == torch.float32 and loss is None
    assert logits.abs().max() <= 15.0  # softcap
    logits, loss = model(idx, targets)
    assert loss.shape == () and torch.allclose(loss, F.cross_entropy(logits.flatten(0, 1), targets.flatten()))


def test_loss_ignores_minus_one_and_masked_positions():
    model = Transformer(VARIANTS["default"])
    idx, targets = tokens(2, 8), tokens(2, 8, seed=1)
    logits, _ = model(idx)
    ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(2, 8)
    masked_targets = targets.clone()
    masked_targets[0, :3] = -1
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 5:] = False
    _, loss = model(idx, masked_targets, loss_mask=mask)
    keep = mask.clone()
    keep[0, :3] = False
    assert torch.allclose(loss, ce[keep].mean())
    _, nothing = model(idx, torch.full_like(targets, -1))
    assert nothing.item() == 0.0
    with pytest.raises(LlmlabError, match="targets / loss_mask must have the input's shape"):
        model(idx, targets[:, :4])


@pytest.mark.parametrize("name", VARIANTS)
def test_fused_head_and_loss_give_the_plain_loss_and_gradients(name):
    """return_logits=False (what the trainers pass) fuses head and loss over row chunks on the CPU; same numbers."""
    plain, fused = Transformer(VARIANTS[name]), Transformer(VARIANTS[name])
    idx, targets = tokens(3, 12), tokens(3, 12, seed=1)
    targets[0, :4] = -1
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[2, 6:] = False
    logits, loss = plain(idx, targets, loss_mask=mask)
    none, fused_loss = fused(idx, targets, loss_mask=mask, return_logits=False)
    assert none is None or VARIANTS[name].logit_softcap is not None  # the softcap keeps the plain path
    torch.testing.assert_close(fused_loss, loss)
    loss.backward()
    fused_loss.backward()
    for (pname, a), b in zip(plain.named_parameters(), fused.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=pname)


def test_linear_cross_entropy_chunks_weights_and_a_frozen_head():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 16, generator=gen, requires_grad=True)
    head = torch.randn(40, 16, generator=gen)  # frozen: no gradient wanted
    targets = torch.randint(0, 40, (50,), generator=gen)
    targets[::7] = -1
    weights = (targets != -1).float() * torch.rand(50, generator=gen)
    expected = (F.cross_entropy(x @ head.T, targets, ignore_index=-1, reduction="none") * weights).sum()
    (grad_expected,) = torch.autograd.grad(expected, x)
    for chunk in (1, 7, 64):  # ragged last chunk, one chunk
        got = linear_cross_entropy(x, head, targets, weights, chunk_rows=chunk)
        torch.testing.assert_close(got, expected)
        (grad,) = torch.autograd.grad(got * 3.0, x)  # backward scales the kept gradient
        torch.testing.assert_close(grad, 3.0 * grad_expected, rtol=1e-4, atol=1e-5)


def test_sequence_longer_than_the_table_raises():
    for name in ("default", "gpt2"):
        with pytest.raises(LlmlabError, match=f"sequence of {T_MAX + 1} tokens .* seq_len={T_MAX}"):
            Transformer(VARIANTS[name])(tokens(1, T_MAX + 1))
    with pytest.raises(LlmlabError, match=r"shape \(batch, time\)"):
        Transformer(VARIANTS["default"])(tokens(1, 5)[0])


@pytest.mark.parametrize("name", VARIANTS)
def test_causal_masking(name):
    model = Transformer(VARIANTS[name])
    idx = tokens(2, 12)
    changed = idx.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % V
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.equal(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_backward_every_option(name):
    model = Transformer(VARIANTS[name])
    _, loss = model(tokens(2, 12), tokens(2, 12, seed=1))
    loss.backward()
    assert torch.isfinite(loss)
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert model.embed.weight.grad.abs().sum() > 0


def test_rope_scores_depend_only_on_relative_position():
    cos, sin = rope_tables(16, 8, 10000.0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(m: int, n: int) -> float:
        qm = apply_rope(q, cos[m : m + 1], sin[m : m + 1])
        kn = apply_rope(k, cos[n : n + 1], sin[n : n + 1])
        return (qm * kn).sum().item()

    assert score(5, 2) == pytest.approx(score(12, 9), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)
    assert score(0, 0) == pytest.approx((q * k).sum().item(), abs=1e-6)  # position 0 is the identity


def test_hand_written_rms_norm_matches_pytorch_values_and_gradients():
    x = torch.randn(3, 2, 5, 8, dtype=torch.float64, requires_grad=True)
    gains = torch.randn(8, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 2, 5, 8, dtype=torch.float64)
    ours, reference = [], []
    for norm, out in ((rms_norm, ours), (lambda x, w, eps: F.rms_norm(x, (8,), None, eps) * w, reference)):
        y = norm(x, gains, 1e-5)
        out.extend([y, *torch.autograd.grad(y, (x, gains), g)])
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(lambda x, w: rms_norm(x, w, 1e-5), (x[:1, :2], gains))


@pytest.mark.parametrize("per_row", [False, True])
def test_hand_written_rope_matches_the_rotate_half_formula(per_row):
    cos, sin = (t.double() for t in rope_tables(10, 8, 500.0))
    x = torch.randn(2, 6, 3, 8, dtype=torch.float64, requires_grad=True)
    if per_row:  # each row at its own positions, as the continuous-batching engine does
        at = torch.tensor([[0, 1, 2, 3, 4, 5], [4, 5, 6, 7, 8, 9]])
        cos, sin = cos[at], sin[at]  # (2, 6, 8)
        c, s = cos[:, :, None], sin[:, :, None]
    else:
        cos, sin = cos[:6], sin[:6]  # (6, 8)
        c, s = cos[None, :, None], sin[None, :, None]
    x1, x2 = x.chunk(2, dim=-1)
    expected = x * c + torch.cat([-x2, x1], dim=-1) * s
    g = torch.randn_like(x)
    torch.testing.assert_close(apply_rope(x, cos, sin), expected)
    torch.testing.assert_close(torch.autograd.grad(apply_rope(x, cos, sin), x, g)[0],
                               torch.autograd.grad(expected, x, g)[0])


# ---- KV cache -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VARIANTS)
@torch.no_grad()
def test_kv_cache_matches_full_forward(name):
    model = Transformer(VARIANTS[name])
    idx = tokens(2, 16)
    full, _ = model(idx)
    cache = model.make_kv_cache(batch_size=2, max_len=16)
    assert cache.k.shape == (2, 2, VARIANTS[name].n_kv_heads, 16, 8)
    prefill, _ = model(idx[:, :5], kv_cache=cache)
    steps = [model(idx[:, t : t + 1], kv_cache=cache)[0] for t in range(5, 10)]
    chunk, _ = model(idx[:, 10:16], kv_cache=cache)  # several tokens after a prefill: needs the explicit mask
    assert cache.pos == 16
    torch.testing.assert_close(torch.cat([prefill, *steps, chunk], dim=1), full, atol=1e-5, rtol=0)
    cache.reset()
    again, _ = model(idx[:, :3], kv_cache=cache)
    torch.testing.assert_close(again, full[:, :3], atol=1e-5, rtol=0)


@torch.no_grad()
def test_kv_cache_expand_for_samples():
    model = Transformer(VARIANTS["gqa"])
    prompt, continuations = tokens(1, 6), tokens(3, 4, seed=1)
    cache = model.make_kv_cache(batch_size=1)
    model(prompt, kv_cache=cache)
    many = cache.expand(3)
    assert (many.batch_size, many.pos, many.max_len, cache.batch_size) == (3, 6, T_MAX, 1)
    got = torch.cat([model(continuations[:, t : t + 1], kv_cache=many)[0] for t in range(4)], dim=1)
    full, _ = model(torch.cat([prompt.expand(3, -1), continuations], dim=1))
    torch.testing.assert_close(got, full[:, 6:], atol=1e-5, rtol=0)
    assert cache.pos == 6  # the original is untouched


@torch.no_grad()
def test_kv_cache_errors():
    cfg = VARIANTS["default"]
    model = Transformer(cfg)
    cache = model.make_kv_cache(batch_size=2, max_len=8)
    model(tokens(2, 6), kv_cache=cache)
    with pytest.raises(LlmlabError, match="6 cached \\+ 3 new tokens exceed its max_len=8"):
        model(tokens(2, 3), kv_cache=cache)
    with pytest.raises(LlmlabError, match="batch of 1 rows does not match the KV cache's batch_size=2"):
        model(tokens(1, 1), kv_cache=cache)
    with pytest.raises(LlmlabError, match=f"max_len=25 must be between 1 and the model's seq_len={T_MAX}"):
        KVCache(cfg, batch_size=1, max_len=T_MAX + 1)


@pytest.mark.parametrize("name", ["default", "gpt2"])
@torch.no_grad()
def test_bf16_autocast_and_bf16_weights_run(name):
    model = Transformer(VARIANTS[name])
    idx = tokens(2, 8)
    full, _ = model(idx)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, loss = model(idx, idx)
        cache = model.make_kv_cache(batch_size=2)
        model(idx[:, :5], kv_cache=cache)
        step, _ = model(idx[:, 5:6], kv_cache=cache)
    assert logits.dtype == torch.float32 and step.dtype == torch.float32 and torch.isfinite(loss)
    torch.testing.assert_close(logits, full, atol=0.3, rtol=0.05)
    torch.testing.assert_close(step[:, 0], full[:, 5], atol=0.3, rtol=0.05)
    half = Transformer(VARIANTS[name]).to(torch.bfloat16)
    cache = half.make_kv_cache(batch_size=2)
    assert cache.k.dtype == torch.bfloat16
    assert half(idx, kv_cache=cache)[0].dtype == torch.float32


# ---- Hugging Face equivalence (only where transformers is installed) ----------------------------------------------


@torch.no_grad()
def test_llama_preset_matches_hf_llama():
    transformers = pytest.importorskip("transformers")
    cfg = tiny("llama", n_kv_heads=2, rope_theta=500.0)
    model = Transformer(cfg, seed=3)
    hf = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(
            vocab_size=cfg.vocab_size,
            hidden_size=cfg.d_model,
            intermediate_size=cfg.mlp_hidden,
            num_hidden_layers=cfg.depth,
            num_attention_heads=cfg.n_heads,
            num_key_value_heads=cfg.n_kv_heads,
            head_dim=cfg.head_dim,
            max_position_embeddings=cfg.seq_len,
            rms_norm_eps=cfg.norm_eps,
            rope_theta=cfg.rope_theta,
            tie_word_embeddings=False,
        )
    ).eval()
    prefixes = {"embed.": "model.embed_tokens.", "norm.": "model.norm.", "blocks.": "model.layers."}
    parts = {"attn_norm": "input_layernorm", "mlp_norm": "post_attention_layernorm", "attn.": "self_attn."}
    parts |= {"wq": "q_proj", "wk": "k_proj", "wv": "v_proj", "wo": "o_proj"}
    parts |= {"w_gate": "gate_proj", "w_up": "up_proj", "w_down": "down_proj"}
    state = {}
    for name, tensor in model.state_dict().items():
        head, _, rest = name.partition(".")
        name = prefixes.get(head + ".", head + ".") + rest
        for old, new in parts.items():
            name = name.replace(old, new)
        state[name] = tensor
    hf.load_state_dict(state, strict=True)
    idx = tokens(2, 12)
    torch.testing.assert_close(hf(idx).logits, model(idx)[0], atol=1e-4, rtol=1e-4)


@pytest.mark.slow  # ~20 s: inductor compiles the forward and backward graphs to C++
def test_compiled_model_matches_the_eager_hand_written_layers():
    """torch.compile traces the composite RMSNorm / RoPE (llmlab.model.elementwise), eager runs the hand-written
    ones: same loss and gradients, so `--compile` on the CPU trains the same model."""
    model = Transformer(VARIANTS["default"])
    x, y = tokens(2, 12), tokens(2, 12, seed=1)
    results = []
    for forward in (model, torch.compile(model)):
        model.zero_grad(set_to_none=True)
        _, loss = forward(x, y, return_logits=False)
        loss.backward()
        results.append([loss.detach()] + [p.grad.clone() for p in model.parameters()])
    for eager, compiled in zip(*results):
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
