"""The hypergraph product of DHCN in the items' own order and in locality order, and with the
numba kernel (graph/spmm.py) in locality order.

Usage: python benchmarks/graph_locality.py [--dataset diginetica] [--hyperedges sessions]
       [--dim 100] [--repeats 7] [--threads 1] [--json FILE]
Builds DHCN's normalised adjacency A from the fitting sessions, then times A·X and Aᵀ·G
(X, G: items × dim float32) with torch's CSR product, the items in their own (first-appearance)
order and relabelled by `graph.locality.locality_order`, and with the numba kernel in locality
order, interleaved, and prints medians, the order's build time, each order's median |i − j|
over the non-zeros and the speed-ups (DHCN takes whichever product is faster here).
Run it on an otherwise idle machine for absolute figures; the ratio holds on a shared one.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import machine_line, write_summary

from sessionrec.data.sources import load_dataset
from sessionrec.graph.locality import bandwidth_profile, locality_order, permute
from sessionrec.graph.spmm import CSRMatrix
from sessionrec.models.dhcn import (
    _to_torch_csr,
    hypergraph_adjacency,
    hypergraph_incidence,
    training_prefixes,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="diginetica")
    ap.add_argument("--hyperedges", default="sessions", choices=["sessions", "prefixes"])
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line(args.threads))
    data = load_dataset(args.dataset)
    sessions = data.fit_sessions()
    if args.hyperedges == "prefixes":
        sessions = training_prefixes(sessions)
    adj = hypergraph_adjacency(hypergraph_incidence(sessions), data.num_items)
    t = time.perf_counter()
    perm = locality_order(adj)
    reordered = permute(adj, perm)
    order_s = time.perf_counter() - t
    cpu = torch.device("cpu")
    variants = {
        "own order": (adj, _to_torch_csr(adj, cpu), _to_torch_csr(adj.T.tocsr(), cpu)),
        "locality order": (
            reordered,
            _to_torch_csr(reordered, cpu),
            _to_torch_csr(reordered.T.tocsr(), cpu),
        ),
        "numba, locality order": (reordered, CSRMatrix(reordered), CSRMatrix(reordered.T)),
    }
    x = torch.randn(adj.shape[0], args.dim)
    times: dict[str, list[float]] = {f"{v} {p}": [] for v in variants for p in ("A·X", "Aᵀ·G")}
    for r in range(args.repeats + 1):  # the first round warms up
        for name, (_, a, a_t) in variants.items():
            for prod, m in (("A·X", a), ("Aᵀ·G", a_t)):
                t = time.perf_counter()
                m @ x
                if r:
                    times[f"{name} {prod}"].append(time.perf_counter() - t)
    print(
        f"{args.dataset}, hyperedges={args.hyperedges}: {adj.shape[0]:,} items, {adj.nnz:,} "
        f"non-zeros, d = {args.dim}; locality order built in {order_s:.2f} s"
    )
    print("| order | median |i − j| | A·X s | Aᵀ·G s |")
    print("|---|---|---|---|")
    summary: dict[str, float] = {"order_seconds": order_s}
    for name, (m, _, _) in variants.items():
        fwd = statistics.median(times[f"{name} A·X"])
        bwd = statistics.median(times[f"{name} Aᵀ·G"])
        print(f"| {name} | {bandwidth_profile(m):,.0f} | {fwd:.3f} | {bwd:.3f} |")
        key = name.replace(",", "").replace(" ", "_")
        summary[f"{key}_forward_s"] = fwd
        summary[f"{key}_backward_s"] = bwd
    own = summary["own_order_forward_s"] + summary["own_order_backward_s"]
    new = summary["locality_order_forward_s"] + summary["locality_order_backward_s"]
    numba = summary["numba_locality_order_forward_s"] + summary["numba_locality_order_backward_s"]
    print(f"speed-up of one forward + backward product: {own / new:.2f}x (locality order)")
    print(f"numba kernel against torch's product, both in locality order: {new / numba:.2f}x")
    summary["speedup"] = own / new
    summary["numba_speedup"] = new / numba
    write_summary(args.json, summary)


if __name__ == "__main__":
    main()
