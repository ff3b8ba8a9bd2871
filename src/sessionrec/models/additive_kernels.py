"""Fused numba kernels for additive attention logits e_ij = vᵀ tanh(a_i + b_j) on CPU.

The torch form builds the (B, T, T, H) tensor a_i + b_j, its tanh, tanh's backward and the
products with v: memory-bound passes over a tensor of 105 MB for 64 sessions of 64 clicks.
Here each session's a, b and v stay in L1, a logit's H terms are summed in registers, and the
backward recomputes tanh, so nothing B·T·T·H is stored. Pairs with a padded end are 0.

Spec: docs/linet.md#cost-on-cpu
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numba import njit, prange
from torch.autograd.function import once_differentiable

from sessionrec.graph.fogcn import _numba_threads as numba_threads

# FOGCN's fastmath flags: no nnan/ninf, so a saturated tanh (w = inf or 0) keeps IEEE semantics
from sessionrec.graph.fogcn_kernels import _FM


@njit(inline="always")
def _exp_twice(a, b, limit):  # pragma: no cover - compiled
    """exp(2a), exp(2b) of a session's rows, and whether all of |a|, |b| ≤ limit (else
    exp(2a)·exp(2b) could be inf·0, and that session is computed with tanh itself)."""
    fits = np.abs(a).max() <= limit and np.abs(b).max() <= limit
    return np.exp(a + a), np.exp(b + b), fits  # a + a: stays float32


@njit(parallel=True, cache=True, fastmath=_FM)
def scores_forward(a, b, v, mask, out, limit):  # pragma: no cover - compiled
    """out[s, i, j] = vᵀ tanh(a[s, i] + b[s, j]) where mask[s, i] and mask[s, j], else 0.

    tanh(a + b) = (w − 1) / (w + 1) with w = exp(2a)·exp(2b): 2·T·H exps per session instead
    of T²·H (absolute error of a float32 tanh < 3e-7). Sessions with a value beyond ±limit
    use tanh.
    """
    sessions, width, d = a.shape
    for s in prange(sessions):
        out[s] = 0.0
        ea, eb, fits = _exp_twice(a[s], b[s], limit)
        for i in range(width):
            if not mask[s, i]:
                continue
            for j in range(width):
                if not mask[s, j]:
                    continue
                acc = v[0] * 0.0
                if fits:
                    ea_i, eb_j = ea[i], eb[j]
                    for f in range(d):
                        w = ea_i[f] * eb_j[f]
                        acc += v[f] * ((w - 1.0) / (w + 1.0))
                else:
                    for f in range(d):
                        acc += v[f] * np.tanh(a[s, i, f] + b[s, j, f])
                out[s, i, j] = acc


@njit(parallel=True, cache=True, fastmath=_FM)
def scores_backward(a, b, v, mask, grad, grad_a, grad_b, grad_v_rows, limit):  # pragma: no cover
    """∂a, ∂b and per-session rows of ∂v for `scores_forward`, tanh recomputed.

    ∂e_ij spreads as u = ∂e_ij · v ⊙ (1 − t²) to ∂a_i and ∂b_j, and ∂v += ∂e_ij · t. Each
    session is one worker's, and ∂v is summed over sessions by the caller in a fixed order:
    the same bits at any thread count.
    """
    sessions, width, d = a.shape
    for s in prange(sessions):
        t = np.empty(d, a.dtype)
        ea, eb, fits = _exp_twice(a[s], b[s], limit)
        gv = grad_v_rows[s]
        gv[:] = 0.0
        grad_b[s] = 0.0
        for i in range(width):
            ga = grad_a[s, i]
            ga[:] = 0.0
            if not mask[s, i]:
                continue
            for j in range(width):
                g = grad[s, i, j]
                if not mask[s, j] or g == 0.0:
                    continue
                if fits:
                    ea_i, eb_j = ea[i], eb[j]
                    for f in range(d):
                        w = ea_i[f] * eb_j[f]
                        t[f] = (w - 1.0) / (w + 1.0)
                else:
                    for f in range(d):
                        t[f] = np.tanh(a[s, i, f] + b[s, j, f])
                gb = grad_b[s, j]
                for f in range(d):
                    gv[f] += g * t[f]
                    u = g * v[f] * (1.0 - t[f] * t[f])
                    ga[f] += u
                    gb[f] += u


class AdditiveScores(torch.autograd.Function):
    """e (B, T, T) from a, b (B, T, H) and v (H,) through the kernels above."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor, v: torch.Tensor, mask: torch.Tensor):
        a, b, v = (x.detach().contiguous() for x in (a, b, v))
        mask = mask.contiguous()
        out = torch.empty(a.shape[:2] + (a.shape[1],), dtype=a.dtype)
        with numba_threads():
            scores_forward(a.numpy(), b.numpy(), v.numpy(), mask.numpy(), out.numpy(), _limit(a))
        ctx.save_for_backward(a, b, v, mask)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor):
        a, b, v, mask = ctx.saved_tensors
        grad_a, grad_b = torch.empty_like(a), torch.empty_like(b)
        rows = torch.empty(a.shape[0], a.shape[2], dtype=a.dtype)
        with numba_threads():
            scores_backward(
                a.numpy(), b.numpy(), v.numpy(), mask.numpy(), grad.contiguous().numpy(),
                grad_a.numpy(), grad_b.numpy(), rows.numpy(), _limit(a),
            )  # fmt: skip
        return grad_a, grad_b, torch.from_numpy(rows.numpy().sum(0)), None  # NumPy: fixed order


def _limit(a: torch.Tensor) -> float:
    """|a|, |b| ≤ limit keep exp(2a)·exp(2b) finite and non-zero (float32: e^±80 at most)."""
    return 20.0 if a.dtype == torch.float32 else 170.0
