"""DHCN: hypergraph incidence and adjacency, line graph, SSL loss, item-table cache."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.nn import functional as F

from sessionrec.data.batching import Batch
from sessionrec.data.dataset import build_dataset
from sessionrec.data.sessions import Sessions
from sessionrec.errors import ConfigError
from sessionrec.models import create
from sessionrec.models.dhcn import (
    hypergraph_adjacency,
    hypergraph_incidence,
    line_graph,
    ssl_loss,
    training_prefixes,
)

TOY = [[1, 2, 3], [3, 2], [4, 3, 4]]  # hyperedges e0 = {1,2,3}, e1 = {2,3}, e2 = {3,4}


def toy_model(**hparams):
    test = Sessions.from_lists([[5, 1]]).as_examples(np.array([2]))
    data = build_dataset("toy", Sessions.from_lists(TOY), test, valid_fraction=0.0)
    model = create("dhcn", data.num_items, **hparams)
    model.prepare(data)
    return model


def test_incidence_and_normalised_adjacency():
    inc = hypergraph_incidence(Sessions.from_lists(TOY))
    assert inc.T.tolist() == [[1, 0], [2, 0], [3, 0], [2, 1], [3, 1], [3, 2], [4, 2]]
    adj = hypergraph_adjacency(inc, 5).toarray()
    # item degrees d = (1, 2, 3, 1), hyperedge degrees b = (3, 2, 2);
    # A_ij = (1/d_i) Σ_{e ∋ i, j} 1/b_e  (D⁻¹ H W B⁻¹ Hᵀ with W = I)
    expected = np.zeros((6, 6))
    expected[1, 1:4] = 1 / 3
    expected[2, 1:4] = [1 / 6, 5 / 12, 5 / 12]
    expected[3, 1:5] = [1 / 9, 5 / 18, 4 / 9, 1 / 6]
    expected[4, 3:5] = [1 / 2, 1 / 2]
    np.testing.assert_allclose(adj, expected, rtol=1e-6)  # rows 0 and 5 (unseen) stay empty


def test_prefix_hyperedges_are_the_training_inputs():
    """hyperedges="prefixes" (the authors' code): every s₁..s_k with k < n, nested."""
    prefixes = training_prefixes(Sessions.from_lists([[1, 2, 3], [4], [5, 6, 5, 7]]))
    assert [prefixes[i].tolist() for i in range(len(prefixes))] == [
        [1], [1, 2], [5], [5, 6], [5, 6, 5]
    ]  # fmt: skip
    by_prefix = toy_model(hyperedges="prefixes").net.incidence.T.tolist()
    # TOY's training inputs: [1], [1, 2], [3], [4], [4, 3]; their last clicks never appear
    assert by_prefix == [[1, 0], [1, 1], [2, 1], [3, 2], [4, 3], [3, 4], [4, 4]]
    with pytest.raises(ConfigError, match="hyperedges must be 'sessions' or 'prefixes'"):
        create("dhcn", 5, hyperedges="inputs")


def test_item_table_is_the_layer_average_and_its_gradient():
    model = toy_model(layers=2)
    net = model.net
    net.train()
    table = net.item_table()
    a = torch.from_numpy(hypergraph_adjacency(net.incidence.numpy(), 5).toarray())
    x0 = net.item_emb.weight
    expected = (x0 + a @ x0 + a @ (a @ x0)) / 3
    torch.testing.assert_close(table, expected)
    g = torch.randn_like(table)
    (grad,) = torch.autograd.grad((table * g).sum(), x0)
    (grad_dense,) = torch.autograd.grad((expected * g).sum(), x0)
    torch.testing.assert_close(grad, grad_dense)
    assert table[5].tolist() == pytest.approx((x0[5] / 3).tolist())  # unseen: X⁽⁰⁾/(L+1)


def test_line_graph_overlap_weights():
    items = torch.tensor([[1, 2, 3], [2, 3, 0], [4, 4, 0]])
    # Jaccard: |{2,3}| / |{1,2,3}| = 2/3 between the first two, 0 with {4}; + I; row-normalised
    expected = torch.tensor([[3 / 5, 2 / 5, 0.0], [2 / 5, 3 / 5, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(line_graph(items), expected)


def test_line_channel_starts_from_mean_click_embedding():
    net = toy_model(layers=1).net
    items, lengths = torch.tensor([[1, 2, 3], [2, 3, 0], [4, 4, 0]]), torch.tensor([3, 2, 2])
    theta0 = net.item_emb(items).sum(1) / lengths.unsqueeze(1)
    expected = (theta0 + line_graph(items) @ theta0) / 2
    torch.testing.assert_close(net.line_channel(items, lengths), expected)


def test_ssl_loss_on_a_tiny_example():
    theta_h = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    theta_l = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # negatives: rows swapped, columns kept -> [[0, 1], [1, 0]]; pos = (1, 2), neg = (0, 0)
    loss = ssl_loss(theta_h, theta_l, torch.tensor([1, 0]), torch.tensor([0, 1]))
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = -math.log(sig(1)) - math.log(sig(2)) + 2 * math.log(2)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # columns swapped too: corrupted = I again, so the negatives score like the positives
    loss = ssl_loss(theta_h, theta_l, torch.tensor([1, 0]), torch.tensor([1, 0]))
    pos_terms = -math.log(sig(1)) - math.log(sig(2))
    assert loss.item() == pytest.approx(pos_terms - math.log(1 - sig(1)) - math.log(1 - sig(2)))


def test_ssl_loss_stays_finite_when_the_sigmoid_saturates():
    """float32 σ(20) == 1: the code's −log(1e-8 + 1 − σ) would be inf; ours is −log(1e-8)."""
    theta_h = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    theta_l = torch.tensor([[0.0, 4.0], [4.0, 0.0]])  # pos = 0, neg = 20 after the row swap
    loss = ssl_loss(theta_h, theta_l, torch.tensor([1, 0]), torch.tensor([0, 1]))
    cap = -math.log(1e-8 + math.exp(-20) / (1 + math.exp(-20)))
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx(2 * math.log(2) + 2 * cap, rel=1e-6)
    grad_theta = theta_h.clone().requires_grad_()
    ssl_loss(grad_theta, theta_l, torch.tensor([1, 0]), torch.tensor([0, 1])).backward()
    assert torch.isfinite(grad_theta.grad).all()


@pytest.mark.parametrize(
    ("ssl_batch", "weight"),
    [(None, 0.5), (2, 0.5), (100, 0.5 * 100 / 2)],  # β·L_S with L_S summed over B = 2 sessions
)
def test_training_loss_adds_beta_times_ssl_per_example_of_the_tuned_batch(ssl_batch, weight):
    """The code sums L_S over its batches of 100: at B sessions each example weighs β·100/B."""
    items, lengths, targets = (
        torch.tensor([[1, 2], [3, 4]]),
        torch.tensor([2, 2]),
        torch.tensor([3, 2]),
    )
    plain = toy_model(beta=0.0).net
    plain.train()
    ce = F.cross_entropy(plain(items, lengths), targets)
    torch.testing.assert_close(plain.training_loss(Batch(items, lengths, targets)), ce)
    net = toy_model(beta=0.5, ssl_batch=ssl_batch).net
    net.train()
    torch.manual_seed(3)
    loss = net.training_loss(Batch(items, lengths, targets))
    table = net.item_table()
    theta_h = net.session_embedding(table, items, lengths)
    torch.manual_seed(3)
    ssl = ssl_loss(theta_h, net.line_channel(items, lengths))
    torch.testing.assert_close(loss, ce + weight * ssl)


def test_a_model_saved_before_ssl_batch_keeps_the_plain_sum(tmp_path):
    """A run written before the option existed summed L_S at any batch: it resumes so."""
    import json

    from sessionrec.models import Recommender

    toy_model().save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["params"].pop("ssl_batch") == 100
    (tmp_path / "model.json").write_text(json.dumps(meta))
    assert Recommender.load(tmp_path).params.ssl_batch is None
    with pytest.raises(ConfigError, match="ssl_batch"):
        toy_model(ssl_batch=0)


def test_item_table_cache_follows_the_weights():
    net = toy_model().net
    items, lengths = torch.tensor([[1, 2, 3]]), torch.tensor([3])
    net.eval()
    with torch.no_grad():
        first = net(items, lengths)
        assert net.item_table() is net.item_table()  # cached while frozen
        net.item_emb.weight.mul_(2.0)  # any in-place change invalidates the cache
        second = net(items, lengths)
    net.train()
    assert net._table is None
    with torch.no_grad():
        torch.testing.assert_close(net(items, lengths), second)  # recomputed, not stale
    assert not torch.allclose(first[:, 1:], second[:, 1:])
    assert torch.isinf(first[:, 0]).all() and torch.isfinite(first[:, 1:]).all()


def test_cached_item_table_follows_a_fused_adam_step():
    """The Trainer's fused Adam updates the item table in place without bumping its version
    counter: X_h cached before the step must not be served after it, even in eval mode."""
    from sessionrec.training.trainer import adam

    net = toy_model().net
    opt = adam(net.parameters(), 0.1, 0.0, torch.device("cpu"))
    assert opt.defaults["fused"]
    net.item_emb.weight.grad = torch.ones_like(net.item_emb.weight)
    net.eval()
    with torch.no_grad():
        cached = net.item_table().clone()
        version = net.item_emb.weight._version
        opt.step()
        assert net.item_emb.weight._version == version  # what a version-only key would miss
        fresh = net.item_table()
    assert not torch.equal(fresh, cached)
    net.train()
    with torch.no_grad():
        torch.testing.assert_close(fresh, net.item_table())


def test_products_run_in_locality_order():
    """A and Aᵀ are kept in graph/locality.py's order; the item table comes back in id order."""
    from sessionrec.graph.locality import locality_order, permute

    net = toy_model(layers=1).net
    a, a_t, perm, inv = net.adjacency()
    adj = hypergraph_adjacency(net.incidence.numpy(), 5)
    np.testing.assert_array_equal(perm.numpy(), locality_order(adj))
    np.testing.assert_array_equal(perm.numpy()[inv.numpy()], np.arange(6))
    np.testing.assert_allclose(a.to_dense().numpy(), permute(adj, perm.numpy()).toarray())
    np.testing.assert_allclose(a_t.to_dense().numpy(), permute(adj, perm.numpy()).T.toarray())
    assert perm.tolist() != list(range(6))  # the toy graph is relabelled, not left as it was


def test_item_table_is_the_same_on_either_product():
    """The numba kernel (graph/spmm.py) and torch's CSR product give the same table and
    gradients, whichever `adjacency` chose on this CPU."""
    from sessionrec.graph.spmm import CSRMatrix
    from sessionrec.models.dhcn import _to_torch_csr

    net = toy_model(layers=2).net
    net.train()
    a, a_t, perm, inv = net.adjacency()
    assert net.product in ("numba", "torch")
    adj, cpu = sp.csr_matrix(a.to_dense().numpy()), torch.device("cpu")
    kinds = {
        "numba": (CSRMatrix(adj), CSRMatrix(adj.T)),
        "torch": (_to_torch_csr(adj, cpu), _to_torch_csr(adj.T.tocsr(), cpu)),
    }
    g = torch.randn(6, net.p.embedding_dim)
    results = {}
    for name, (a_k, a_t_k) in kinds.items():
        net._adj = (net._adj[0], a_k, a_t_k, perm, inv)
        table = net.item_table()
        (grad,) = torch.autograd.grad((table * g).sum(), net.item_emb.weight)
        results[name] = (table.detach(), grad)
    torch.testing.assert_close(results["numba"][0], results["torch"][0])
    torch.testing.assert_close(results["numba"][1], results["torch"][1])
