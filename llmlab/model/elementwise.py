"""The block's elementwise layers, RMSNorm, RoPE and ReLU², with hand-written backward passes for the CPU.

    y = rms_norm(x, weight, eps)    # x (..., D), weight (D,)
    y = apply_rope(x, cos, sin)     # x (B, T, heads, D), cos/sin (T, D) or (B, T, D) from rope_tables
    h = relu_squared(x)             # relu(x) ** 2

Why: on the CPU these layers run at memory speed, not compute speed. A default-size training step holds (16, 256, 192)
float32 activations (3 MB each, more than a core's 2 MB of L2), so each pass over one costs ~0.2-0.3 ms whatever it
computes, and autograd's composition of small ops makes many passes: `F.rms_norm` is pow, mean, add, rsqrt and two
multiplies forward and about twice that backward (~3 ms a call, forward + backward, 13 calls a step);
RoPE as `x * cos + cat(-x2, x1) * sin` writes five tensors forward and as many backward. Written out by hand, RMSNorm
is one reduction and two multiplies forward, and RoPE is one rotation forward and the inverse rotation backward, with
nothing saved but the tables. The default model's training step, side by side in one process
(`bench/bench_elementwise.py`, three runs): 0.912-0.914x the time of the composite ops (docs/LOG.md, 2026-11-27).

On other devices, and under torch.compile, the composite ops are kept: CUDA has a fused `rms_norm`, and the
compiler fuses the rest itself; these functions were only measured on the CPU. Both paths give the same results to
float rounding (tests).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _composite(x: Tensor) -> bool:
    """Use PyTorch's composite ops: off the CPU, for low-precision activations (the hand-written reductions would run
    in them), or while torch.compile traces (it fuses them itself)."""
    return x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or torch.compiler.is_compiling()


def _inverse_rms(x: Tensor, eps: float) -> Tensor:
    """r = 1 / sqrt(mean(x^2) + eps), one number per row: (..., 1); the norm's reduction is one read of x."""
    return torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(x.shape[-1]).add_(eps).rsqrt_()


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, eps: float) -> Tensor:
        r = _inverse_rms(x, eps)
        ctx.save_for_backward(x, r, weight)
        return (x * r).mul_(weight)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor | None, None]:
        x, r, weight = ctx.saved_tensors
        # With n = x * r and grad_n = grad * weight, the input's gradient is r * (grad_n - n * mean(grad_n * n)): the
        # radial component removed. Both reductions are matrix-vector products of one tensor, grad * x: per row,
        # sum(grad_n * n) = r * (grad * x) @ weight, and the gain's gradient is r^T (grad * x) over all rows.
        prod = (grad * x).reshape(-1, x.shape[-1])  # (rows, D)
        rows_r = r.reshape(-1)  # (rows,)
        grad_weight = rows_r @ prod if ctx.needs_input_grad[1] else None  # (D,)
        # (..., 1): -r^2 ((grad * x) @ weight) / D
        coef = (prod @ weight).mul_(rows_r).mul_(rows_r).div_(-x.shape[-1]).view(r.shape)
        return (grad * weight).addcmul_(x, coef).mul_(r), grad_weight, None


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """x / sqrt(mean(x^2, last dim) + eps) * weight, in x's dtype (weight is cast to it)."""
    weight = weight.to(x.dtype)
    if _composite(x):
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    if not torch.is_grad_enabled():  # inference: the same arithmetic without autograd's bookkeeping
        return (x * _inverse_rms(x, eps)).mul_(weight)
    return _RMSNorm.apply(x, weight, eps)


def rope_tables(seq_len: int, head_dim: int, theta: float) -> tuple[Tensor, Tensor]:
    """cos, sin of shape (seq_len, head_dim), float32, in Llama's layout (frequencies repeated for both halves)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)  # (D/2,)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)  # (seq_len, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (seq_len, D)
    return angles.cos().float(), angles.sin().float()


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x * cos + rotate_half(x) * sin with rotate_half(x) = (-x2, x1), written half by half into one new tensor.

    cos, sin: the first halves (..., D/2) of the tables (both halves are equal); the inverse rotation is sin -> -sin.
    """
    half = x.shape[-1] // 2
    out = torch.empty_like(x)
    x1, x2, out1, out2 = x[..., :half], x[..., half:], out[..., :half], out[..., half:]
    torch.mul(x1, cos, out=out1).addcmul_(x2, sin, value=-1.0)  # x1 cos - x2 sin
    torch.mul(x2, cos, out=out2).addcmul_(x1, sin)  # x2 cos + x1 sin
    return out


class _Rope(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        ctx.save_for_backward(cos, sin)
        return _rotate(x, cos, sin)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        return _rotate(grad, cos, -sin), None, None  # a rotation's gradient is the opposite rotation


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x (B, T, heads, D) by position: x * cos + rotate_half(x) * sin, with cos/sin (T, D), or (B, T, D) when
    each row is at its own positions."""
    if cos.dim() == 2:
        cos, sin = cos[None], sin[None]  # (1, T, D)
    cos, sin = cos.to(x.dtype)[:, :, None, :], sin.to(x.dtype)[:, :, None, :]  # (B or 1, T, 1, D)
    if _composite(x):
        x1, x2 = x.chunk(2, dim=-1)  # (B, T, heads, D/2) each
        return x * cos + torch.cat([-x2, x1], dim=-1) * sin
    half = x.shape[-1] // 2
    if not torch.is_grad_enabled():  # inference: the rotation alone, without autograd's bookkeeping
        return _rotate(x, cos[..., :half], sin[..., :half])
    return _Rope.apply(x, cos[..., :half], sin[..., :half])


class _ReluSquared(torch.autograd.Function):
    """relu(x)^2 with one saved tensor, two passes forward and one backward. Autograd's relu().square() makes five
    passes over (B, T, mlp_hidden) and runs square as pow(x, 2), which the CPU does ~3x slower than a multiply: the
    MLP's activation took ~10% of a default-size CPU training step that way (docs/LOG.md, 2026-11-27)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        r = F.relu(x)
        ctx.save_for_backward(r)
        return r * r

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (r,) = ctx.saved_tensors
        return torch.addcmul(grad.new_zeros(()), grad, r, value=2.0)  # 2 * grad * r in one pass


def relu_squared(x: Tensor) -> Tensor:
    """relu(x) ** 2 (the MLP activation of mlp="relu2"), on any device."""
    return _ReluSquared.apply(x)
