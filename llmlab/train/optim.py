"""The optimizer for pre-training and fine-tuning: Muon on hidden weight matrices, AdamW on the rest.

    opt = build_optimizer(model, "muon", lr=3e-3, weight_decay=0.0)
    for step in range(total):
        apply_lr(opt, lr_multiplier(step, ...))          # llmlab.train.schedule
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)

`build_optimizer` returns one `MuonAdamW`, a torch Optimizer whose param groups each carry a `kind` ("muon" or
"adamw") saying which update they get, a `name` for logs, and an `initial_lr` that the schedule scales. Everything
lives in ordinary optimizer state, so `state_dict()` / `load_state_dict()` resume a run bit for bit.

Muon (Keller Jordan, 2024) runs SGD momentum and replaces each 2-D update by the nearest semi-orthogonal matrix,
found with a few Newton-Schulz iterations: every direction of the update then moves by about the same amount, which
lets hidden matrices take a much larger learning rate than Adam would allow. It is meant for hidden matrices only;
embeddings, the output head and 1-D gains keep AdamW.

Distributed: under DDP the gradients are already all-reduced when `step()` runs and every rank holds the full
matrices, so this optimizer works unchanged and needs no communication of its own. (It would not under FSDP/ZeRO,
where a rank holds only a shard of each matrix and cannot orthogonalise it.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from llmlab.errors import LlmlabError

KINDS = ("muon", "adamw")  # optimizer kinds for build_optimizer, and the two kinds of group inside MuonAdamW

# The quintic's coefficients from Keller Jordan's Muon: chosen to push small singular values up as fast as possible
# rather than to converge exactly, so after 5 steps the singular values land in a band around 1 (about 0.68-1.18
# for random matrices; only directions with a tiny share of the update stay below it), not at 1. That is close
# enough: what matters is that no direction of the update dominates the others.
NS_COEFFS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
ADAM_EPS = 1e-8  # the usual Adam epsilon; only matters for parameters whose gradient is almost always ~0
GROUP_DEFAULTS = {
    "muon": dict(momentum=0.95, weight_decay=0.0),
    "adamw": dict(betas=(0.9, 0.95), eps=ADAM_EPS, weight_decay=0.0),
}


def zeropower_via_newtonschulz5(g: Tensor, steps: int = NS_STEPS) -> Tensor:
    """Approximately orthogonalise each matrix of `g` ((rows, cols) or a batch (n, rows, cols)): return ~U V^T of its
    SVD U S V^T, with the same shape.

    Runs in bfloat16 on CUDA (the iteration is stable there and it is much faster) and in float32 elsewhere (CPU
    bfloat16 matmuls are slow and gain nothing). The caller casts the result back to the parameter's dtype.
    """
    assert g.ndim in (2, 3), f"Newton-Schulz needs a matrix or a batch of them, got shape {tuple(g.shape)}"
    a, b, c = NS_COEFFS
    x = g.to(torch.bfloat16 if g.is_cuda else torch.float32)
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT  # work on the wide side (r <= c), so x @ x.mT below is the smaller (r x r) Gram matrix
    # Frobenius norm >= spectral norm, so after this every singular value is <= 1: inside the iteration's basin.
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    # beta * input + alpha * (m1 @ m2) in one call: separate scalings and sums were ~18% of the CPU optimizer step's
    # profile (a depth-6 step went 425 -> 384 ms; depth 3 unchanged, docs/LOG.md 2026-11-27).
    fused_mm = torch.baddbmm if x.ndim == 3 else torch.addmm
    for _ in range(steps):
        gram = x @ x.mT  # (..., r, r)
        poly = fused_mm(gram, gram, gram, beta=b, alpha=c)  # (..., r, r): b * gram + c * gram @ gram
        x = fused_mm(x, poly, x, beta=a)  # (..., r, c): a * x + poly @ x; singular value s -> a*s + b*s^3 + c*s^5
    return x.mT if tall else x


def orthogonalise_all(updates: list[Tensor], batched: bool | None = None) -> list[Tensor]:
    """zeropower_via_newtonschulz5 of each matrix. Batched (the default on CUDA), matrices of one shape (tall ones
    transposed to wide) go as one batch: one by one, a depth-12 model's 72 matrices took as long as its backward
    pass on an H100, bound by kernel launches, not FLOPs (docs/LOG.md, 2026-11-27). On the CPU, one at a time: the
    batched products measured ~10% slower there."""
    if batched is None:
        batched = bool(updates) and updates[0].is_cuda
    if not batched:
        return [zeropower_via_newtonschulz5(u) for u in updates]
    batches: dict[tuple[int, int], list[int]] = {}
    for i, u in enumerate(updates):
        batches.setdefault((min(u.shape), max(u.shape)), []).append(i)
    out: list[Tensor] = [torch.empty(0)] * len(updates)
    for members in batches.values():
        wide = [updates[i] if updates[i].size(0) <= updates[i].size(1) else updates[i].mT for i in members]
        for i, x in zip(members, zeropower_via_newtonschulz5(torch.stack(wide)).unbind(0)):  # (n, r, c), r <= c
            out[i] = x if updates[i].size(0) <= updates[i].size(1) else x.mT
    return out


class MuonAdamW(torch.optim.Optimizer):
    """One optimizer holding Muon groups and AdamW groups; `group["kind"]` picks the update.

    Every group needs `params`, `kind` and `lr`; the rest default per kind (GROUP_DEFAULTS): Muon groups use
    `momentum` and `weight_decay`, AdamW groups `betas`, `eps` and `weight_decay`. Weight decay is decoupled
    (AdamW-style): p <- p * (1 - lr * weight_decay) before the update, so it follows the schedule as the step does.
    """

    def __init__(self, param_groups: list[dict]):
        super().__init__(param_groups, defaults={})

    def add_param_group(self, group: dict) -> None:
        """Fill in the defaults of the group's kind and record `initial_lr`; torch's __init__ calls this per group."""
        kind = group.get("kind")
        if kind not in GROUP_DEFAULTS:
            raise ValueError(f"optimizer group {group.get('name', '?')!r}: kind must be one of {KINDS}")
        group = {**GROUP_DEFAULTS[kind], **group}
        group.setdefault("initial_lr", group["lr"])
        super().add_param_group(group)
        if kind == "muon" and any(p.ndim != 2 for p in self.param_groups[-1]["params"]):
            raise ValueError(f"optimizer group {group.get('name', '?')!r}: Muon takes 2-D parameters only")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["kind"] == "muon":
                self._muon_step(group)
            else:
                self._adamw_step(group)
        return loss

    def _muon_step(self, group: dict) -> None:
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        for p in params:
            if not self.state[p]:
                self.state[p]["momentum_buffer"] = torch.zeros_like(p.grad)
        grads = [p.grad for p in params]  # (rows, cols) each
        bufs = [self.state[p]["momentum_buffer"] for p in params]
        # buf = mu * buf + (1 - mu) * g: an EMA, so its scale does not depend on mu. Then Nesterov: look one momentum
        # step ahead (p.grad is left untouched). foreach: one kernel launch per op for the whole group on CUDA.
        torch._foreach_lerp_(bufs, grads, 1 - mu)
        updates = torch._foreach_lerp(grads, bufs, mu)
        if wd:
            torch._foreach_mul_(params, 1 - lr * wd)
        for p, u in zip(params, orthogonalise_all(updates)):
            # An orthogonalised (rows, cols) matrix has RMS entry 1/sqrt(max(rows, cols)); this factor makes it
            # 1/sqrt(cols) = 1/sqrt(fan_in) for every shape, so tall matrices (out > in, e.g. an MLP's up-projection)
            # move as much per entry as square and wide ones.
            p.add_((u * max(1.0, p.size(0) / p.size(1)) ** 0.5).to(p.dtype), alpha=-lr)

    def _adamw_step(self, group: dict) -> None:
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
        grads = [p.grad for p in params]
        ms = [self.state[p]["exp_avg"] for p in params]
        vs = [self.state[p]["exp_avg_sq"] for p in params]
        steps = [self.state[p]["step"] for p in params]
        torch._foreach_lerp_(ms, grads, 1 - beta1)  # first moment
        torch._foreach_mul_(vs, beta2)  # second moment
        torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
        # Bias correction: both moments start at 0, so early on they underestimate by (1 - beta^t).
        denoms = torch._foreach_div(vs, [1 - beta2**t for t in steps])
        torch._foreach_sqrt_(denoms)
        torch._foreach_add_(denoms, eps)
        if wd:
            torch._foreach_mul_(params, 1 - lr * wd)
        torch._foreach_addcdiv_(params, ms, denoms, [-lr / (1 - beta1**t) for t in steps])


def build_optimizer(
    model: nn.Module,
    kind: str,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.95),
    muon_lr: float = 0.02,
    muon_momentum: float = 0.95,
    embed_lr: float | None = None,
    head_lr: float | None = None,
    muon_weight_decay: float | None = None,
) -> MuonAdamW:
    """Group `model`'s trainable parameters and return one optimizer over all of them.

    Roles, by parameter:
      hidden  2-D parameters under `blocks.` (attention and MLP matrices): Muon at `muon_lr` with "muon";
              AdamW at `lr` with "adamw". Weight decay applies.
      embed   parameters of nn.Embedding modules (`embed`, `pos_embed`; a tied head shares `embed.weight`, and
              `named_parameters` lists a shared tensor once): AdamW at `embed_lr` (default `lr`), no weight decay:
              decay would pull the rows of rare tokens, which get few gradient updates, towards 0.
      head    `lm_head.*` when untied: AdamW at `head_lr` (default `lr`), with weight decay (a 2-D matrix).
      gains   everything else (1-D norm gains, biases): AdamW at `lr`, no weight decay: a gain's natural value is
              1, and decay would pull it to 0.
    `muon_weight_decay` (default `weight_decay`) is separate because decoupled decay is scaled by the group's lr,
    and Muon's lr is ~10-100x AdamW's, so the same number shrinks hidden matrices that much faster.
    `betas=(0.9, 0.95)`: a shorter second-moment memory than Adam's 0.999, the usual choice for LLM pre-training,
    where it keeps the step size from lagging behind sudden gradient growth (loss spikes).
    """
    if kind not in KINDS:
        raise LlmlabError(f"unknown optimizer {kind!r}: choose one of {', '.join(KINDS)}")
    embedding_params = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    roles: dict[str, list[nn.Parameter]] = {"hidden": [], "embed": [], "head": [], "gains": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in embedding_params:
            roles["embed"].append(p)
        elif name.startswith("lm_head."):
            roles["head"].append(p)
        elif name.startswith("blocks.") and p.ndim == 2:
            roles["hidden"].append(p)
        else:
            roles["gains"].append(p)
    if not any(roles.values()):
        raise LlmlabError("the model has no trainable parameters to optimise")

    adam = dict(kind="adamw", betas=tuple(betas), eps=ADAM_EPS)
    if kind == "muon":
        wd = weight_decay if muon_weight_decay is None else muon_weight_decay
        hidden = dict(kind="muon", lr=muon_lr, momentum=muon_momentum, weight_decay=wd)
    else:
        hidden = dict(adam, lr=lr, weight_decay=weight_decay)
    groups = [
        dict(hidden, name="hidden", params=roles["hidden"]),
        dict(adam, name="embed", params=roles["embed"], lr=lr if embed_lr is None else embed_lr, weight_decay=0.0),
        dict(adam, name="head", params=roles["head"], lr=lr if head_lr is None else head_lr, weight_decay=weight_decay),
        dict(adam, name="gains", params=roles["gains"], lr=lr, weight_decay=0.0),
    ]
    return MuonAdamW([g for g in groups if g["params"]])
