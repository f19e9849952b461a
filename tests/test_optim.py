"""Tests for llmlab.train.optim (Muon + AdamW) and llmlab.train.schedule, on a tiny stand-in model.

The stand-in uses the real model's parameter names (embed, pos_embed, blocks.{i}.attn.wq, attn_norm, q_norm,
mlp.w_up, norm, lm_head) so the grouping rules are exercised as they will be, without importing the model.
"""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from llmlab.errors import LlmlabError
from llmlab.train.optim import MuonAdamW, build_optimizer, orthogonalise_all, zeropower_via_newtonschulz5
from llmlab.train.schedule import apply_lr, apply_muon_momentum, lr_multiplier, muon_momentum

VOCAB, DIM, CTX = 32, 16, 8


class Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.wq = nn.Linear(DIM, DIM, bias=False)
        self.q_norm = nn.RMSNorm(DIM)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.w_up = nn.Linear(DIM, 4 * DIM, bias=False)  # tall (64 x 16)
        self.w_down = nn.Linear(4 * DIM, DIM, bias=False)  # wide (16 x 64)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn_norm, self.attn = nn.RMSNorm(DIM), Attn()
        self.mlp_norm, self.mlp = nn.RMSNorm(DIM), Mlp()

    def forward(self, x):
        x = x + self.attn.wq(self.attn.q_norm(self.attn_norm(x)))
        return x + self.mlp.w_down(F.gelu(self.mlp.w_up(self.mlp_norm(x))))


class TinyLM(nn.Module):
    """Per-position residual MLPs: no attention, but the same parameter names and roles as the real model."""

    def __init__(self, tied: bool = False, n_blocks: int = 2):
        super().__init__()
        self.embed, self.pos_embed = nn.Embedding(VOCAB, DIM), nn.Embedding(CTX, DIM)
        self.blocks = nn.ModuleList(Block() for _ in range(n_blocks))
        self.norm = nn.RMSNorm(DIM)
        self.lm_head = None if tied else nn.Linear(DIM, VOCAB, bias=False)

    def forward(self, idx):
        x = self.embed(idx) + self.pos_embed(torch.arange(idx.size(1)))
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x @ self.embed.weight.T if self.lm_head is None else self.lm_head(x)


def make_model(seed: int = 0, tied: bool = False) -> TinyLM:
    torch.manual_seed(seed)
    return TinyLM(tied=tied)


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable task: the next token is a fixed permutation of the current one."""
    perm = torch.randperm(VOCAB, generator=torch.Generator().manual_seed(123))
    x = torch.randint(0, VOCAB, (16, CTX), generator=torch.Generator().manual_seed(1000 + step))
    return x, perm[x]


def train(model, opt, steps: range) -> list[float]:
    losses = []
    for step in steps:
        x, y = batch(step)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def groups_by_name(opt) -> dict[str, dict]:
    return {g["name"]: g for g in opt.param_groups}


# ---- schedule ----


def test_lr_multiplier_key_points():
    total, warm = 1000, 100  # warmdown over the last 200 steps: 800..1000
    f = lambda s: lr_multiplier(s, total, warm, warmdown_frac=0.2, final_frac=0.1)  # noqa: E731
    assert f(0) == pytest.approx(0.01)  # 1/warmup: near 0, not 0
    assert f(49) == pytest.approx(0.5)
    assert f(99) == 1.0 and f(100) == 1.0  # end of warmup
    assert f(500) == 1.0  # middle
    assert f(800) == 1.0  # start of warmdown
    assert f(900) == pytest.approx(0.55)  # halfway down from 1 to 0.1
    assert f(999) == pytest.approx(0.1 + 0.9 / 200)
    assert f(1000) == pytest.approx(0.1)  # end
    assert lr_multiplier(1000, total, warm, 0.2) == 0.0  # final_frac defaults to 0


def test_lr_multiplier_edge_cases():
    assert lr_multiplier(0, 10, warmup_steps=0, warmdown_frac=0.0) == 1.0
    # Warmup and warmdown overlap in a short run: the smaller factor wins.
    assert lr_multiplier(5, 10, warmup_steps=10, warmdown_frac=0.5) == pytest.approx(0.6)  # warmup 6/10, decay 5/5
    assert lr_multiplier(7, 10, warmup_steps=10, warmdown_frac=0.5) == pytest.approx(0.6)  # warmup 8/10, decay 3/5
    with pytest.raises(LlmlabError):
        lr_multiplier(0, 0, 10, 0.2)
    with pytest.raises(LlmlabError):
        lr_multiplier(0, 100, 10, 1.5)


def test_apply_lr_and_muon_momentum():
    opt = build_optimizer(make_model(), "muon", lr=1e-3, weight_decay=0.0, muon_lr=0.02, embed_lr=0.1)
    apply_lr(opt, 0.5)
    lrs = {name: g["lr"] for name, g in groups_by_name(opt).items()}
    assert lrs == pytest.approx({"hidden": 0.01, "embed": 0.05, "head": 5e-4, "gains": 5e-4})
    assert muon_momentum(0) == pytest.approx(0.85) and muon_momentum(150) == pytest.approx(0.90)
    assert muon_momentum(300) == pytest.approx(0.95) and muon_momentum(10_000) == pytest.approx(0.95)
    apply_muon_momentum(opt, 0.9)
    assert groups_by_name(opt)["hidden"]["momentum"] == 0.9
    assert "momentum" not in groups_by_name(opt)["gains"]  # AdamW groups carry only AdamW settings


# ---- grouping ----


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("kind", ["muon", "adamw"])
def test_groups_cover_every_param_once(kind, tied):
    model = make_model(tied=tied)
    model.blocks[1].attn.q_norm.weight.requires_grad_(False)  # frozen params are left out
    opt = build_optimizer(model, kind, lr=1e-3, weight_decay=0.1)
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(seen) == len(set(seen))
    assert set(seen) == {id(p) for p in model.parameters() if p.requires_grad}

    names = {id(p): n for n, p in model.named_parameters()}
    groups = {g["name"]: (g, sorted(names[id(p)] for p in g["params"])) for g in opt.param_groups}
    hidden, hidden_names = groups["hidden"]
    assert hidden["kind"] == kind and hidden["weight_decay"] == 0.1
    assert hidden_names == sorted(
        f"blocks.{i}.{m}.weight" for i in range(2) for m in ("attn.wq", "mlp.w_up", "mlp.w_down")
    )
    assert groups["embed"][1] == ["embed.weight", "pos_embed.weight"] and groups["embed"][0]["weight_decay"] == 0
    assert ("head" in groups) != tied
    if not tied:
        assert groups["head"][1] == ["lm_head.weight"] and groups["head"][0]["weight_decay"] == 0.1
    gains, gain_names = groups["gains"]
    assert gains["kind"] == "adamw" and gains["weight_decay"] == 0
    assert "norm.weight" in gain_names and "blocks.0.attn.q_norm.weight" in gain_names
    assert "blocks.1.attn.q_norm.weight" not in gain_names
    assert all(g["initial_lr"] == g["lr"] for g in opt.param_groups)


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(LlmlabError, match="unknown optimizer 'sgd'"):
        build_optimizer(make_model(), "sgd", lr=1e-3, weight_decay=0.0)


# ---- Newton-Schulz ----


@pytest.mark.parametrize("shape", [(64, 16), (16, 64), (32, 32)])
def test_newton_schulz_is_roughly_orthogonal(shape):
    g = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    x = zeropower_via_newtonschulz5(g)
    assert x.shape == g.shape and x.dtype == torch.float32
    s = torch.linalg.svdvals(x)
    # The quintic trades exactness for speed: singular values land in a band around 1, not on 1. Square random
    # matrices have a few tiny singular values that 5 steps cannot lift all the way, hence the looser floor there.
    assert s.max() < 1.5 and s.min() > (0.5 if shape[0] != shape[1] else 0.1)
    assert torch.median(s) > 0.6
    # Same singular vectors as g: x is close to U V^T from g's SVD.
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    cos = F.cosine_similarity(x.flatten(), (u @ vh).flatten(), dim=0)
    assert cos > 0.95


def test_newton_schulz_of_a_batch_is_each_matrix_alone():
    g = torch.randn(5, 16, 48, generator=torch.Generator().manual_seed(1))
    batched = zeropower_via_newtonschulz5(g)
    for i in range(5):
        torch.testing.assert_close(batched[i], zeropower_via_newtonschulz5(g[i]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(zeropower_via_newtonschulz5(g.mT), batched.mT, rtol=1e-4, atol=1e-5)  # tall batch
    gen = torch.Generator().manual_seed(2)
    mixed = [torch.randn(shape, generator=gen) for shape in [(16, 48), (48, 16), (32, 32), (16, 48), (32, 32)]]
    for one, grouped in zip(orthogonalise_all(mixed), orthogonalise_all(mixed, batched=True)):  # by shape, as on CUDA
        torch.testing.assert_close(grouped, one, rtol=1e-4, atol=1e-5)


def test_muon_step_is_the_per_matrix_update():
    """The batched, foreach step against Muon written out one matrix at a time (only the Muon matrices train)."""
    model, reference = make_model(), make_model()
    hidden = [n for n, p in model.named_parameters() if n.startswith("blocks.") and p.ndim == 2]
    for m in (model, reference):
        for n, p in m.named_parameters():
            p.requires_grad_(n in hidden)
    opt = build_optimizer(model, "muon", lr=1e-2, weight_decay=0.1, muon_lr=0.02)
    buffers = {n: torch.zeros_like(p) for n, p in reference.named_parameters() if n in hidden}
    for step in range(3):
        for m in (model, reference):
            x, y = batch(step)
            F.cross_entropy(m(x).flatten(0, 1), y.flatten()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            for n, p in reference.named_parameters():
                if n in hidden:
                    buffers[n].lerp_(p.grad, 0.05)
                    u = zeropower_via_newtonschulz5(p.grad.lerp(buffers[n], 0.95))
                    p.mul_(1 - 0.02 * 0.1).add_(u * max(1.0, p.size(0) / p.size(1)) ** 0.5, alpha=-0.02)
                    p.grad = None
    for (name, a), b in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)
    assert not torch.equal(model.blocks[0].mlp.w_up.weight, make_model().blocks[0].mlp.w_up.weight)  # it trained


# ---- training ----


@pytest.mark.parametrize("kind", ["muon", "adamw"])
def test_both_kinds_reduce_the_loss(kind):
    model = make_model()
    opt = build_optimizer(model, kind, lr=1e-2, weight_decay=0.01, muon_lr=0.02)
    losses = train(model, opt, range(30))
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0], losses


def test_resume_is_bit_identical():
    def fresh():
        model = make_model(seed=0)
        return model, build_optimizer(model, "muon", lr=1e-2, weight_decay=0.1, muon_lr=0.02)

    straight, straight_opt = fresh()
    train(straight, straight_opt, range(10))

    first, first_opt = fresh()
    train(first, first_opt, range(5))
    buf = io.BytesIO()
    torch.save({"model": first.state_dict(), "optim": first_opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)

    resumed, resumed_opt = fresh()
    resumed.load_state_dict(saved["model"])
    resumed_opt.load_state_dict(saved["optim"])
    assert isinstance(resumed_opt, MuonAdamW)
    train(resumed, resumed_opt, range(5, 10))
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), name


def test_adamw_groups_match_torch_adamw():
    ours_model, torch_model = make_model(), make_model()
    ours = build_optimizer(ours_model, "adamw", lr=1e-2, weight_decay=0.1)
    names = {id(p): n for n, p in ours_model.named_parameters()}
    by_name = dict(torch_model.named_parameters())
    reference = torch.optim.AdamW(  # the same groups, over torch_model's parameters
        [
            dict(params=[by_name[names[id(p)]] for p in g["params"]], lr=g["lr"], weight_decay=g["weight_decay"])
            for g in ours.param_groups
        ],
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    train(ours_model, ours, range(5))
    train(torch_model, reference, range(5))
    for (name, a), b in zip(ours_model.named_parameters(), torch_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
