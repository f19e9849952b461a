"""The output head and the cross-entropy loss in one pass over row chunks, without the full (N, V) logits.

    loss = linear_cross_entropy(x, head_weight, targets, row_weights)   # x (N, C), head (V, C), targets (N,)

It returns sum_i row_weights[i] * CE(x[i] @ head.T, targets[i]), as the plain head + F.cross_entropy would, and
its gradients for x and the head. Why: on the CPU the plain path spends more time moving the (N, V) logits through
memory than multiplying. A default-size training step (N = 4,096 positions, V = 4,096) writes 67 MB of logits,
67 MB of log-probabilities, a 67 MB zero tensor for the gradient, and reads them back again: log_softmax, its
backward and the zero fill took ~35% of the step, more than the head's matmuls (docs/LOG.md, 2026-11-27). Here each
chunk of `chunk_rows` rows (4 MiB of logits at the default 256 x 4,096) is made, turned into its gradient in place
while it sits in cache, and multiplied back, so the full logits never exist. Head + loss, forward and backward, for
that default step: 138 ms plain, 80 ms here, about the time of the three head matmuls alone (/tmp/ce_bench.py).
Exponentiating once per chunk (max, exp, sums, one scaling) instead of logsumexp then exp made the whole default
step another 2% faster (0.977-0.980x, two side-by-side runs).

The gradient is computed in the forward pass (softmax - one-hot, scaled by the row weights) and kept; backward only
scales it by the incoming gradient. So calling it costs a backward's worth of work even if no backward follows:
the model uses it only when training (grad enabled, logits not wanted). Rows whose weight is 0 (ignored targets)
cost the same as any other and contribute nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Rows per chunk. Every chunk reads the whole head matrix, so chunks must not be too small for a big vocabulary.
# Measured here, forward + backward, median of 5-7: V = 4,096, C = 192, N = 4,096: 32 rows 122 ms, 64 95, 128 83,
# 256 80, 512 86 (plain 126-140); V = 49,152, C = 576, N = 1,200, frozen head (SmolLM2 LoRA): 21 rows 1,171 ms,
# 64 752, 128 615, 256 703, 512 650 (plain 683).
CHUNK_ROWS = 256


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, targets: Tensor, row_weights: Tensor, chunk_rows: int) -> Tensor:
        # x (N, C), weight (V, C), targets (N,) long in [0, V), row_weights (N,) float
        need_x, need_w = ctx.needs_input_grad[:2]  # a frozen head (LoRA) skips its gradient's matmuls
        grad_x = torch.empty_like(x) if need_x else None  # (N, C)
        grad_w = torch.zeros_like(weight) if need_w else None  # (V, C)
        total = x.new_zeros((), dtype=torch.float32)
        for start in range(0, x.shape[0], chunk_rows):
            rows = slice(start, start + chunk_rows)
            xc, tc, wc = x[rows], targets[rows], row_weights[rows].to(torch.float32)  # (n, C), (n,), (n,)
            logits = (xc @ weight.T).float()  # (n, V)
            picked = logits.gather(1, tc[:, None]).squeeze(1)  # (n,)
            # The softmax in place, exponentiating once: exp(logits - max), its row sums, then one scaling that also
            # applies the row weights (logsumexp followed by exp(logits - lse) made three more passes over the chunk).
            peak = logits.amax(dim=-1, keepdim=True)  # (n, 1)
            exps = logits.sub_(peak).exp_()  # (n, V)
            sums = exps.sum(dim=-1)  # (n,)
            total += ((sums.log() + peak.squeeze(1) - picked) * wc).sum()  # log-sum-exp - picked logit = CE
            # d(sum_i w_i * CE_i) / d logits = w_i * (softmax_i - onehot_i)
            grad_logits = exps.mul_((wc / sums)[:, None])
            grad_logits[torch.arange(len(tc)), tc] -= wc
            grad_logits = grad_logits.to(x.dtype)
            if need_x:
                grad_x[rows] = grad_logits @ weight  # (n, C)
            if need_w:
                grad_w.addmm_(grad_logits.T, xc)  # (V, C)
        ctx.grads = grad_x, grad_w
        return total

    @staticmethod
    def backward(ctx, grad_total: Tensor):
        grad_x, grad_w = ctx.grads
        scaled = [None if g is None else g * grad_total for g in (grad_x, grad_w)]
        return *scaled, None, None, None


def linear_cross_entropy(x: Tensor, weight: Tensor, targets: Tensor, row_weights: Tensor,
                         chunk_rows: int = CHUNK_ROWS) -> Tensor:
    """sum_i row_weights[i] * cross_entropy(x[i] @ weight.T, targets[i]); x (N, C), weight (V, C), targets (N,)
    (any value where row_weights is 0), row_weights (N,). A scalar float32 tensor."""
    safe_targets = torch.where(row_weights != 0, targets, torch.zeros_like(targets))  # e.g. -1 (ignored) -> 0
    return _LinearCrossEntropy.apply(x, weight, safe_targets, row_weights, chunk_rows)
