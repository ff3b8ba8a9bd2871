"""Full-ranking scores hₛ·Vᵀ on a CPU through whichever float32 GEMM is faster on this machine.

torch's CPU wheel multiplies float32 matrices with MKL. On an AMD EPYC (Zen 4) MKL ran this
product (hundreds of session vectors against every item row, inner dimension 100) at about
40% of the speed of OpenBLAS, which NumPy ships. The first large product of a process times
both on its own operands and keeps NumPy's only where it is at least 25% faster, so that
where the two are close (as MKL on the Intel CPUs it is built for may well be) the choice
stays torch's, run after run.
Products that run under autocast or in a trace (ONNX export, torch.compile), or that are
small (one session against the catalogue: a matrix-vector product) always run in torch;
where autograd records the product, NumPy's GEMM computes both gradients too (RepeatNet's
explore decoder trains through it).

Spec: docs/performance.md#full-ranking-scores
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch.autograd.function import once_differentiable

BACKENDS = ("auto", "numpy", "torch")
MIN_MACS = 1 << 26  # B·N·d below this (one session, small catalogues): torch, never timed
_choice: dict[str, str] = {}  # "auto"'s decision, made once per process
_openblas: Any = None


def _openblas_threads() -> Any:
    """A context that caps NumPy's OpenBLAS at torch's thread count (its default is every
    core, which oversubscribes a machine shared by one-thread runs)."""
    global _openblas
    if _openblas is None:
        from threadpoolctl import ThreadpoolController

        _openblas = ThreadpoolController().select(internal_api="openblas")
    return _openblas.limit(limits=torch.get_num_threads())


def numpy_scores(h: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """h @ tableᵀ by NumPy's GEMM (float32 CPU tensors; no gradient)."""
    a, b = h.detach().contiguous().numpy(), table.detach().numpy()
    with _openblas_threads():
        return torch.from_numpy(a @ b.T)


def torch_scores(h: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    return h @ table.t()


class _NumpyScores(torch.autograd.Function):
    """h @ tableᵀ with both gradients by NumPy's GEMM: ∂h = G·table, ∂table = Gᵀ·h."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(h, table)
        return numpy_scores(h, table)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, table = ctx.saved_tensors
        g = grad.contiguous().numpy()
        grad_h = grad_table = None
        with _openblas_threads():
            if ctx.needs_input_grad[0]:
                grad_h = torch.from_numpy(g @ table.detach().numpy())
            if ctx.needs_input_grad[1]:
                grad_table = torch.from_numpy(g.T @ h.detach().contiguous().numpy())
        return grad_h, grad_table


def faster_backend(h: torch.Tensor, table: torch.Tensor, rounds: int = 3) -> str:
    """ "numpy" or "torch": which computed h @ tableᵀ faster, best of `rounds` alternating
    rounds after a warm-up; NumPy must be at least 25% faster."""
    best = {"numpy": np.inf, "torch": np.inf}
    products = {"numpy": numpy_scores, "torch": torch_scores}
    with torch.no_grad():
        for r in range(rounds + 1):
            for name, product in products.items():
                start = time.perf_counter()
                product(h, table)
                if r:
                    best[name] = min(best[name], time.perf_counter() - start)
    return "numpy" if best["numpy"] < 0.8 * best["torch"] else "torch"


def _check(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown scoring backend {backend!r}; choose one of {BACKENDS}")


def _numpy_can(h: torch.Tensor, table: torch.Tensor) -> bool:
    """Float32 CPU matrices outside autocast and outside a trace (an ONNX export or
    torch.compile must record torch's product, not a NumPy result)."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return False
    if h.device.type != "cpu" or table.device.type != "cpu" or h.dim() != 2 or table.dim() != 2:
        return False
    if h.dtype != torch.float32 or table.dtype != torch.float32:
        return False
    return not torch.is_autocast_enabled("cpu")


def scores(h: torch.Tensor, table: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """h @ tableᵀ: (B, d) session vectors against (N, d) item rows, (B, N) scores.

    `backend`: "auto" (NumPy for large products where it measured faster, see the module
    docstring), "numpy" (wherever it can run, else torch) or "torch".
    """
    _check(backend)
    if backend == "torch" or not _numpy_can(h, table):
        return torch_scores(h, table)
    if backend == "auto":
        if h.shape[0] * table.shape[0] * h.shape[1] < MIN_MACS:
            return torch_scores(h, table)
        if "cpu" not in _choice:
            _choice["cpu"] = faster_backend(h, table)
        backend = _choice["cpu"]
    if backend == "torch":
        return torch_scores(h, table)
    if torch.is_grad_enabled() and (h.requires_grad or table.requires_grad):
        return _NumpyScores.apply(h, table)
    return numpy_scores(h, table)


def set_backend(backend: str) -> None:
    """Fix this process's backend for large CPU products ("numpy" or "torch"), or "auto" to
    time both again at the next one (benchmarks compare the two this way)."""
    _check(backend)
    _choice.clear()
    if backend != "auto":
        _choice["cpu"] = backend


def chosen_backend() -> str | None:
    """What "auto" chose in this process, or None before the first large product."""
    return _choice.get("cpu")
