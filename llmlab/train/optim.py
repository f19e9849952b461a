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
    """Approximately orthogonalise `g` (rows x cols): return ~U V^T of its SVD U S V^T, with the same shape.

    Runs in bfloat16 on CUDA (the iteration is stable there and it is much faster) and in float32 elsewhere (CPU
    bfloat16 matmuls are slow and gain nothing). The caller casts the result back to the parameter's dtype.
    """
    assert g.ndim == 2, f"Newton-Schulz needs a matrix, got shape {tuple(g.shape)}"
    a, b, c = NS_COEFFS
    x = g.to(torch.bfloat16 if g.is_cuda else torch.float32)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T  # work on the wide side (r <= c), so x @ x.T below is the smaller (r x r) Gram matrix
    # Frobenius norm >= spectral norm, so after this every singular value is <= 1: inside the iteration's basin.
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.T  # (r, r)
        poly = b * gram + c * gram @ gram  # (r, r)
        x = a * x + poly @ x  # (r, c): each singular value s becomes a*s + b*s^3 + c*s^5
    return x.T if tall else x


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
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad  # (rows, cols)
            state = self.state[p]
            if not state:
                state["momentum_buffer"] = torch.zeros_like(g)
            buf = state["momentum_buffer"]
            buf.lerp_(g, 1 - mu)  # buf = mu * buf + (1 - mu) * g: an EMA, so its scale does not depend on mu
            update = g.lerp(buf, mu)  # Nesterov: look one momentum step ahead (p.grad is left untouched)
            update = zeropower_via_newtonschulz5(update)
            # An orthogonalised (rows, cols) matrix has RMS entry 1/sqrt(max(rows, cols)); this factor makes it
            # 1/sqrt(cols) = 1/sqrt(fan_in) for every shape, so tall matrices (out > in, e.g. an MLP's up-projection)
            # move as much per entry as square and wide ones.
            update = update * max(1.0, p.size(0) / p.size(1)) ** 0.5
            if wd:
                p.mul_(1 - lr * wd)
            p.add_(update.to(p.dtype), alpha=-lr)

    def _adamw_step(self, group: dict) -> None:
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
            m.lerp_(g, 1 - beta1)  # first moment
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # second moment
            # Bias correction: both moments start at 0, so early on they underestimate by (1 - beta^t).
            denom = (v / (1 - beta2**t)).sqrt_().add_(eps)
            if wd:
                p.mul_(1 - lr * wd)
            p.addcdiv_(m, denom, value=-lr / (1 - beta1**t))


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
