"""`linear_cross_entropy`: the blocked full-softmax loss equals the plain one."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionrec.data.batching import Batch
from sessionrec.models.layers import length_group_sizes, linear_cross_entropy
from sessionrec.models.narm import NARM, NARMParams


def _grads(loss_fn, h, table, targets):
    h = h.clone().requires_grad_()
    table = table.clone().requires_grad_()
    loss = loss_fn(h, table, targets)
    return (loss.detach(), *torch.autograd.grad(loss, (h, table)))


def test_hand_computed_example():
    # logits of the one session are (0, 1, 0): loss = log(1 + e + 1) − 1
    h = torch.tensor([[1.0, 0.0]])
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    loss, grad_h, grad_t = _grads(linear_cross_entropy, h, table, torch.tensor([1]))
    e = math.e
    assert loss.item() == pytest.approx(math.log(2 + e) - 1, abs=1e-6)
    p = torch.tensor([1, e, 1]) / (2 + e)  # softmax; ∂L/∂logits = p − onehot(1)
    assert torch.allclose(grad_h, torch.tensor([[p[1] - 1, p[2]]]), atol=1e-6)
    expected_t = torch.outer(p - torch.tensor([0.0, 1.0, 0.0]), h[0])
    assert torch.allclose(grad_t, expected_t, atol=1e-6)


def test_skip_padding_is_a_masked_first_column():
    h = torch.tensor([[1.0, 0.0]])
    table = torch.tensor([[5.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # row 0 would dominate
    loss = linear_cross_entropy(h, table, torch.tensor([1]), skip_padding=True)
    assert loss.item() == pytest.approx(math.log(math.e + 1) - 1, abs=1e-6)


def _plain(skip):
    def loss(h, table, targets):
        logits = h @ table.t()
        if skip:
            logits = logits.index_fill(1, torch.tensor([0]), -torch.inf)
        return F.cross_entropy(logits, targets)

    return loss


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 40),
    rows=st.integers(2, 3000),
    skip=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_equals_plain_cross_entropy(batch, rows, skip, seed):
    """Several blocks of 97 rows and a ragged last one, against the plain form."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, 8, generator=g)
    table = torch.randn(rows, 8, generator=g) * 0.5
    targets = torch.randint(1 if skip else 0, rows, (batch,), generator=g)
    ours = _grads(lambda a, b, c: linear_cross_entropy(a, b, c, skip, 97), h, table, targets)
    plain = _grads(_plain(skip), h, table, targets)
    for a, b in zip(ours, plain, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_matches_autocast_plain_form():
    g = torch.Generator().manual_seed(0)
    h, table = torch.randn(16, 32, generator=g), torch.randn(500, 32, generator=g) * 0.3
    targets = torch.randint(0, 500, (16,), generator=g)
    with torch.autocast("cpu", torch.bfloat16):
        ours = _grads(lambda *a: linear_cross_entropy(*a, block_rows=97), h, table, targets)
        plain = _grads(_plain(False), h, table, targets)
    assert ours[1].dtype == ours[2].dtype == torch.float32  # the parameters' dtype
    assert abs(ours[0].item() - plain[0].item()) < 0.02
    for a, b in zip(ours[1:], plain[1:], strict=True):
        assert (a - b).abs().max() < 0.02 * b.abs().max()


def test_dot_product_models_train_on_the_logits_of_forward():
    torch.manual_seed(0)
    net = NARM(5000, NARMParams()).eval()  # no dropout: both losses see the same network
    items = torch.tensor([[3, 7, 9], [5, 0, 0]])  # 2 sessions: blocks of 2,048 of 5,001 rows
    batch = Batch(items, torch.tensor([3, 1]), torch.tensor([12, 4999]))
    plain = F.cross_entropy(net(batch.items, batch.lengths), batch.targets)
    assert net.training_loss(batch).item() == pytest.approx(plain.item(), rel=1e-6)


LENGTH_GROUP_MODELS = ["gcegnn", "linet", "narm"]  # measured: docs/performance.md#length-groups


def test_length_group_models_are_the_ones_that_opt_in():
    from sessionrec.models.base import NeuralRecommender
    from sessionrec.models.registry import available, get

    opted = [
        name
        for name in available()
        if issubclass(get(name), NeuralRecommender)
        and getattr(get(name).Module, "length_groups", False)
        and not name.startswith("linet-")  # LINet's ablations: the same module
    ]
    assert sorted(opted) == sorted(LENGTH_GROUP_MODELS)


@pytest.mark.parametrize("name", LENGTH_GROUP_MODELS)
def test_training_by_length_groups_gives_the_padded_pass_results(name):
    """A model that opts into `length_groups` encodes a large training batch in groups of
    similar length: the same logits and gradients as one padded pass (dropout off, so train
    and eval modes see the same network), and it really ran in groups."""
    from sessionrec.models.layers import GROUP_ROWS
    from sessionrec.models.registry import create

    no_dropout = {"gcegnn": {"dropout_global": 0.0, "dropout_local": 0.0, "hops": 2}}
    net = create(name, 40, seed=0, embedding_dim=16, **no_dropout.get(name, {})).net
    if name == "gcegnn":  # a global graph to walk: random neighbours, some slots empty
        g = torch.Generator().manual_seed(1)
        net.neighbors = torch.randint(0, 41, net.neighbors.shape, generator=g)
        net.neighbors[0] = 0
        net.neighbor_weights = torch.rand(net.neighbors.shape, generator=g) * (net.neighbors > 0)
    for module in net.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    g = torch.Generator().manual_seed(0)
    n, width = 3 * GROUP_ROWS + 5, 12
    lengths = torch.randint(1, width + 1, (n,), generator=g)
    items = torch.randint(1, 40, (n, width), generator=g)
    items[torch.arange(width)[None, :] >= lengths[:, None]] = 0
    widths, encode = [], net.session_vectors
    net.session_vectors = lambda it, le: widths.append(it.shape[1]) or encode(it, le)
    results = []
    for training in (True, False):
        net.train(training)
        logits = net(items, lengths)
        loss = logits.log_softmax(-1)[:, 1].sum()
        results.append((logits, *torch.autograd.grad(loss, list(net.parameters()))))
    assert len(widths) == 4 and widths[0] < width and widths[-1] == width  # 3 groups, 1 pass
    for grouped, padded in zip(*results, strict=True):
        assert torch.allclose(grouped, padded, atol=1e-5)


def _padded(lengths: list[int], sizes: list[int]) -> int:
    """Σ rows × longest of consecutive runs of sorted `lengths`."""
    ends = list(itertools.accumulate(sizes))
    return sum(n * lengths[e - 1] for n, e in zip(sizes, ends, strict=True))


def test_length_groups_give_the_long_tail_a_run_of_its_own():
    """Hand-worked: 20 sessions each of lengths 1, 2 and 3 and 16 of length 50, runs of at
    least 16: 20·1 + 20·2 + 20·3 + 16·50 = 920 padded positions. Equal runs of 19 would
    pad 19·1 + 19·2 + 19·3 + 19·50 = 1,064."""
    lengths = [1] * 20 + [2] * 20 + [3] * 20 + [50] * 16
    sizes = length_group_sizes(np.array(lengths), 4, 16)
    assert sizes == [20, 20, 20, 16]
    assert _padded(lengths, sizes) == 920


def test_length_groups_cut_inside_equal_lengths_where_the_minimum_run_needs_it():
    """Lengths 1, 2, 2, 2, 5, 5 in runs of at least 3: no cut where the length changes
    leaves two such runs (1 | 2 2 2 5 5, 1 2 2 2 | 5 5), one cut between the 2s does:
    [1, 2, 2] + [2, 5, 5] pads 3·2 + 3·5 = 21 positions against 6·5 = 30 for one run."""
    lengths = [1, 2, 2, 2, 5, 5]
    sizes = length_group_sizes(np.array(lengths), 3, 3)
    assert sizes == [3, 3]
    assert _padded(lengths, sizes) == 21


def _fewest_padded(lengths: list[int], groups: int, min_rows: int) -> float:
    n, best = len(lengths), math.inf
    for k in range(1, groups + 1):
        for cuts in itertools.combinations(range(1, n), k - 1):
            bounds = [0, *cuts, n]
            sizes = [b - a for a, b in itertools.pairwise(bounds)]
            if min(sizes) >= min_rows:
                best = min(best, _padded(lengths, sizes))
    return best


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(1, 9), min_size=1, max_size=14),
    st.integers(1, 4),
    st.integers(1, 5),
)
def test_length_groups_have_the_fewest_padded_positions(lengths, groups, min_rows):
    """Against every way to cut the sorted lengths into at most `groups` runs of at least
    `min_rows`; one run when none is possible."""
    lengths = sorted(lengths)
    sizes = length_group_sizes(np.array(lengths), groups, min_rows)
    assert sum(sizes) == len(lengths) and len(sizes) <= groups
    best = _fewest_padded(lengths, groups, min_rows)
    if math.isinf(best):
        assert sizes == [len(lengths)]
    else:
        assert min(sizes) >= min_rows and _padded(lengths, sizes) == best
