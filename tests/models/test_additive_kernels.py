"""LINet's additive attention logits: numba kernels against the torch form (values, gradients)."""

import math

import pytest
import torch

from sessionrec.errors import ConfigError
from sessionrec.graph.fogcn import numba_available
from sessionrec.models import create
from sessionrec.models.linet import additive_logits

pytestmark = pytest.mark.skipif(not numba_available(), reason="numba is not installed")


def inputs(dtype: torch.dtype, scale: float = 1.0, seed: int = 0):
    """Ragged sessions (single clicks and a full row included), right-padded."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([9, 1, 4, 7, 3])
    a = (torch.randn(5, 9, 11, generator=g, dtype=dtype) * scale).requires_grad_()
    b = (torch.randn(5, 9, 11, generator=g, dtype=dtype) * scale).requires_grad_()
    v = torch.randn(11, generator=g, dtype=dtype).requires_grad_()
    mask = torch.arange(9)[None] < lengths[:, None]
    return a, b, v, mask


def real_pairs(mask: torch.Tensor) -> torch.Tensor:
    return mask[:, :, None] & mask[:, None, :]


def logits_and_grads(backend: str, a, b, v, mask, upstream):
    e = additive_logits(a, b, v, mask, backend)
    e = e * real_pairs(mask)  # the torch form also fills padded pairs; LINet masks them
    a.grad = b.grad = v.grad = None
    (e * upstream).sum().backward()
    return e.detach(), a.grad.clone(), b.grad.clone(), v.grad.clone()


def test_hand_computed_logit():
    a = torch.tensor([[[0.5, -1.0], [0.0, 0.0]]])
    b = torch.tensor([[[0.25, 2.0], [1.0, 1.0]]])
    v = torch.tensor([2.0, -1.0])
    e = additive_logits(a, b, v, torch.tensor([[True, False]]), "numba")
    by_hand = 2 * math.tanh(0.5 + 0.25) - 1 * math.tanh(-1.0 + 2.0)
    assert e[0, 0, 0].item() == pytest.approx(by_hand, abs=1e-6)
    assert e[0, 0, 1].item() == 0.0 and e[0, 1].abs().sum() == 0  # a padded end: 0


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("scale", [1.0, 12.0])  # 12: saturated tanh and sessions past ±limit
def test_kernels_match_the_torch_form(dtype, tol, scale):
    a, b, v, mask = inputs(dtype, scale)
    upstream = torch.randn(5, 9, 9, dtype=dtype, generator=torch.Generator().manual_seed(1))
    ours = logits_and_grads("numba", a, b, v, mask, upstream)
    ref = logits_and_grads("torch", a, b, v, mask, upstream)
    for name, x, y in zip(("e", "∂a", "∂b", "∂v"), ours, ref, strict=True):
        assert torch.allclose(x, y, atol=tol, rtol=tol), f"{name} differs by {(x - y).abs().max()}"


def test_gradcheck_float64():
    a, b, v, mask = inputs(torch.float64)
    assert torch.autograd.gradcheck(lambda *t: additive_logits(*t, mask, "numba"), (a, b, v))


def test_same_bits_at_one_and_two_threads():
    a, b, v, mask = inputs(torch.float32)
    upstream = torch.randn(5, 9, 9)
    before, results = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(logits_and_grads("numba", a, b, v, mask, upstream))
    finally:
        torch.set_num_threads(before)
    for x, y in zip(*results, strict=True):
        assert torch.equal(x, y)


def test_linet_scores_and_gradients_agree_across_backends():
    model = create("linet", 50, seed=0)
    net = model.net.train()
    items = torch.tensor([[3, 7, 7, 1, 9], [4, 2, 0, 0, 0], [5, 0, 0, 0, 0]])
    lengths, targets = torch.tensor([5, 2, 1]), torch.tensor([2, 8, 6])
    results = []
    for backend in ("torch", "numba"):
        net.local.backend = backend
        torch.manual_seed(0)  # the same dropout masks
        loss = torch.nn.functional.cross_entropy(net(items, lengths), targets)
        net.zero_grad()
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in net.parameters()]))
    (loss_t, grads_t), (loss_n, grads_n) = results
    assert torch.allclose(loss_t, loss_n, atol=1e-6)
    for g_t, g_n in zip(grads_t, grads_n, strict=True):
        assert torch.allclose(g_t, g_n, atol=1e-5)


def test_unknown_backend_and_unfit_tensors_are_refused():
    a, b, v, mask = inputs(torch.float32)
    with pytest.raises(ConfigError, match="backend"):
        additive_logits(a, b, v, mask, "cuda")
    with pytest.raises(ConfigError, match="float32/float64"):
        additive_logits(a.bfloat16(), b.bfloat16(), v.bfloat16(), mask, "numba")
    half = additive_logits(a.bfloat16(), b.bfloat16(), v.bfloat16(), mask, "auto")
    assert half.dtype == torch.bfloat16  # "auto" takes the torch form
