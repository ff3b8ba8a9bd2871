"""Scoring products (models/blas.py): both GEMMs against a hand-worked product, when NumPy's
may run, the timing choice and OpenBLAS's thread cap."""

from __future__ import annotations

import time

import pytest
import torch

from sessionrec.models import blas
from sessionrec.models.layers import score_all_items


@pytest.fixture(autouse=True)
def fresh_choice(monkeypatch):
    monkeypatch.setattr(blas, "_choice", {})


@pytest.mark.parametrize("backend", ["numpy", "torch", "auto"])
def test_hand_worked_scores(backend):
    h = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert blas.scores(h, table, backend).tolist() == [[1.0, 2.0, 3.0], [3.0, 4.0, 7.0]]


def test_numpy_matches_torch_on_a_catalogue():
    g = torch.Generator().manual_seed(0)
    h, table = torch.randn(300, 64, generator=g), torch.randn(5000, 64, generator=g)
    a, b = blas.scores(h, table, "numpy"), blas.scores(h, table, "torch")
    assert a.shape == (300, 5000) and a.dtype == torch.float32
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-4)


def test_gradients_match_torch():
    g = torch.Generator().manual_seed(1)
    h0, t0 = torch.randn(7, 5, generator=g), torch.randn(11, 5, generator=g)
    weight = torch.randn(7, 11, generator=g)  # a loss that weights every score differently
    grads = {}
    for backend in ("numpy", "torch"):
        h, table = h0.clone().requires_grad_(), t0.clone().requires_grad_()
        out = blas.scores(h, table, backend)
        (out * weight).sum().backward()
        grads[backend] = (h.grad, table.grad)
    assert torch.allclose(grads["numpy"][0], weight @ t0, atol=1e-5)  # ∂h = W·table
    assert torch.allclose(grads["numpy"][1], weight.t() @ h0, atol=1e-5)  # ∂table = Wᵀ·h
    for a, b in zip(grads["numpy"], grads["torch"], strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_gradient_to_one_input_only():
    h, table = torch.randn(3, 4), torch.randn(6, 4, requires_grad=True)
    out = blas.scores(h, table, "numpy")
    assert out.grad_fn is not None
    out.sum().backward()
    assert torch.allclose(table.grad, h.sum(0).expand(6, 4), atol=1e-6)
    with torch.no_grad():  # a trained model's parameters, scored for evaluation
        assert blas.scores(h, table, "numpy").grad_fn is None


def test_autocast_and_other_dtypes_stay_in_torch():
    h, table = torch.randn(4, 3), torch.randn(5, 3)
    with torch.autocast("cpu", torch.bfloat16):
        assert blas.scores(h, table, "numpy").dtype == torch.bfloat16
    assert blas.scores(h.double(), table.double(), "numpy").dtype == torch.float64


def test_auto_times_large_products_once_and_never_small_ones(monkeypatch):
    calls = []

    def fake_faster(h, table):
        calls.append(h.shape)
        return "numpy"

    monkeypatch.setattr(blas, "faster_backend", fake_faster)
    monkeypatch.setattr(blas, "MIN_MACS", 1000)
    small, table = torch.randn(2, 8), torch.randn(50, 8)  # 800 multiply-adds
    score_all_items(small, table)
    assert calls == [] and blas.chosen_backend() is None
    big = torch.randn(4, 8)
    for _ in range(3):
        assert torch.allclose(score_all_items(big, table), big @ table.t(), atol=1e-5)
    assert calls == [(4, 8)] and blas.chosen_backend() == "numpy"


@pytest.mark.parametrize(("numpy_s", "torch_s", "expected"), [
    (0.010, 0.020, "numpy"),  # 2x faster
    (0.017, 0.020, "torch"),  # 15% faster: within the margin, torch stays
    (0.020, 0.010, "torch"),
])  # fmt: skip
def test_faster_backend_needs_a_clear_margin(monkeypatch, numpy_s, torch_s, expected):
    monkeypatch.setattr(blas, "numpy_scores", lambda h, t: time.sleep(numpy_s))
    monkeypatch.setattr(blas, "torch_scores", lambda h, t: time.sleep(torch_s))
    assert blas.faster_backend(torch.zeros(1, 1), torch.zeros(1, 1), rounds=2) == expected


def test_openblas_runs_at_torchs_thread_count():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    openblas = threadpoolctl.ThreadpoolController().select(internal_api="openblas")
    if not openblas.lib_controllers:
        pytest.skip("NumPy is not linked to OpenBLAS here")
    before_torch = torch.get_num_threads()
    before = [c.num_threads for c in openblas.lib_controllers]
    torch.set_num_threads(1)
    try:
        with blas._openblas_threads():
            inside = threadpoolctl.ThreadpoolController().select(internal_api="openblas")
            assert all(c.num_threads == 1 for c in inside.lib_controllers)
    finally:
        torch.set_num_threads(before_torch)
    after = threadpoolctl.ThreadpoolController().select(internal_api="openblas")
    assert [c.num_threads for c in after.lib_controllers] == before


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown scoring backend"):
        blas.scores(torch.zeros(1, 1), torch.zeros(1, 1), "mkl")


def test_evaluation_ranks_alike_on_either_gemm(tiny, monkeypatch):
    """A whole evaluation (NARM's scores through `score_all_items`) on each backend."""
    from sessionrec.evaluation import evaluate
    from sessionrec.models.registry import create

    monkeypatch.setattr(blas, "MIN_MACS", 0)  # the synthetic catalogue is small
    model = create("narm", tiny.num_items, seed=0)
    model.prepare(tiny)
    results = {}
    for backend in ("torch", "numpy"):
        blas.set_backend(backend)
        results[backend] = evaluate(model, tiny.test, ks=(5, 20))
    assert results["torch"].metrics["hr@20"] > 0
    assert results["numpy"].metrics == pytest.approx(results["torch"].metrics, abs=1e-9)


def test_traces_record_torchs_product():
    """A traced module must hold the matrix product itself, not a constant NumPy result."""

    class Scorer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = torch.nn.Parameter(torch.randn(6, 4))

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            return blas.scores(h, self.table, "numpy")

    scorer = Scorer()
    with torch.no_grad():  # torch.export: what `sessionrec export --format onnx` traces with
        exported = torch.export.export(scorer, (torch.randn(3, 4),)).module()
        other = torch.randn(3, 4)
        assert torch.allclose(exported(other), other @ scorer.table.t(), atol=1e-6)
