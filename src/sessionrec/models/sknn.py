"""Session-kNN baselines: SKNN and V-SKNN (Ludewig & Jannach 2018), STAN (Garg et al. 2019).

All three score a batch with sparse matrix products and no loop over sessions (candidates,
similarities, the k nearest, votes); the variants differ only in the weights, which each
subclass states in its docstring.

Spec: docs/baselines-knn-mf.md#session-knn-sknn-v-sknn-stan
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp
import torch

from sessionrec.data.batching import Batch
from sessionrec.data.sessions import Sessions
from sessionrec.errors import ConfigError, RunError
from sessionrec.models.base import Recommender
from sessionrec.models.itemknn import incidence, saved_sessions
from sessionrec.models.registry import register
from sessionrec.training.config import use_threads

if TYPE_CHECKING:
    from sessionrec.data.dataset import SessionDataset
    from sessionrec.training.config import TrainConfig

CANDIDATE_BUDGET = 2_000_000  # candidate (session, neighbour) pairs scored at once


@dataclass
class Neighbourhood:
    """What the weight hooks see for one batch (arrays aligned as noted)."""

    length: np.ndarray  # (B,) clicks in each current session
    n_cur: np.ndarray  # (B,) distinct items in each current session
    cur_keys: np.ndarray  # sorted row * (N+1) + item of the current sessions' distinct items
    cur_pos: np.ndarray  # last 1-based position of that item in its session (aligned)
    row: np.ndarray  # candidate or neighbour pairs: current session row ...
    sess: np.ndarray  # ... and training session index
    overlap: np.ndarray  # |s ∩ n| per pair
    weighted: np.ndarray  # Σ_{i ∈ s ∩ n} w(i) per pair, w from `position_weights`
    n_sess: np.ndarray  # distinct items of each pair's training session
    num_sessions: int  # S, the number of training sessions

    def subset(self, idx: np.ndarray) -> Neighbourhood:
        """The same batch restricted to pairs `idx`."""
        pairs = ("row", "sess", "overlap", "weighted", "n_sess")
        return replace(self, **{f: getattr(self, f)[idx] for f in pairs})


class SessionKNNBase(Recommender):
    """Shared machinery; subclasses define the three weight hooks."""

    def __init__(self, num_items: int, params: object = None) -> None:
        super().__init__(num_items, params)
        self._set_sessions(np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64))

    # --- hooks -----------------------------------------------------------------------------
    def position_weights(self, pos: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Weight of a current-session item at 1-based position `pos` of `length` clicks."""
        return np.ones(len(pos))

    def similarity(self, nb: Neighbourhood) -> np.ndarray:
        raise NotImplementedError

    def item_weights(
        self, nb: Neighbourhood, sim: np.ndarray, pair: np.ndarray, item: np.ndarray, q: np.ndarray
    ) -> np.ndarray:
        """Score of `item` (at 1-based position q of neighbour `pair`) for that pair's session."""
        return sim[pair]

    # --- data ------------------------------------------------------------------------------
    def _set_sessions(self, items: np.ndarray, offsets: np.ndarray) -> None:
        self.sessions = Sessions(np.asarray(items, np.int64), np.asarray(offsets, np.int64))
        self._cache: dict[str, np.ndarray | sp.csr_matrix] | None = None

    def _index(self) -> dict[str, np.ndarray | sp.csr_matrix]:
        """Item -> session incidence, click positions and last-click flags (built lazily)."""
        if self._cache is None:
            s, n1 = self.sessions, self.num_items + 1
            x = incidence(s, self.num_items)
            session_of = np.repeat(np.arange(len(s)), s.lengths)
            pos = np.arange(len(s.items)) - s.offsets[session_of] + 1
            key = session_of * n1 + s.items
            order = np.lexsort((pos, key))
            last = np.ones(len(key), dtype=bool)
            last[order[:-1]] = key[order[:-1]] != key[order[1:]]
            df = np.diff(x.tocsc().indptr)
            self._cache = {
                "by_item": x.T.tocsr(),
                "n_sess": np.diff(x.indptr),
                "pos": pos,
                "last": last,
                "df": df,
                "idf": np.where(df > 0, np.log(max(len(s), 1) / np.maximum(df, 1)), 0.0),
            }
        return self._cache

    def learn(self, dataset: SessionDataset, config: TrainConfig | None) -> None:
        use_threads(config)
        sessions = dataset.fit_sessions()
        keep = sessions.lengths > 0
        sessions = sessions.select(np.flatnonzero(keep)) if not keep.all() else sessions
        self._set_sessions(sessions.items, sessions.offsets)
        self._index()

    learns_online = True

    def add_sessions(self, sessions: Sessions) -> None:
        """Append the sessions to the neighbour pool; the index is rebuilt at the next query."""
        joined = self.sessions.concat(sessions.select(np.flatnonzero(sessions.lengths > 0)))
        self._set_sessions(joined.items, joined.offsets)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {
            "session_items": torch.from_numpy(self.sessions.items),
            "session_offsets": torch.from_numpy(self.sessions.offsets),
        }

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        sessions = saved_sessions(tensors, self.num_items)
        if sessions is None:
            raise RunError(f"weights do not fit model '{self.name}' with {self.num_items} items")
        self._set_sessions(sessions.items, sessions.offsets)

    # --- scoring ---------------------------------------------------------------------------
    def score_batch(self, batch: Batch) -> torch.Tensor:
        items, length = batch.items.cpu().numpy(), batch.lengths.cpu().numpy()
        if len(length) == 0:
            return torch.zeros(0, self.num_items + 1, device=self.device)
        # Bound memory: score rows in chunks of at most CANDIDATE_BUDGET candidate pairs (an
        # upper bound: the sessions holding each clicked item). Usually one chunk.
        valid = np.arange(items.shape[1])[None, :] < length[:, None]
        bound = np.cumsum((self._index()["df"][items] * valid).sum(1))
        cuts = np.searchsorted(bound, np.arange(CANDIDATE_BUDGET, bound[-1], CANDIDATE_BUDGET))
        bounds = np.unique(np.r_[0, cuts, len(length)])
        spans = zip(bounds[:-1], bounds[1:], strict=True)
        parts = [self._score_rows(items[a:z], length[a:z]) for a, z in spans]
        return torch.cat(parts).to(self.device)

    def _score_rows(self, items: np.ndarray, length: np.ndarray) -> torch.Tensor:
        idx = self._index()
        n1, n_s = self.num_items + 1, len(self.sessions)
        b = len(length)
        # distinct items of each current session with the position of their last click
        r, t = np.nonzero(np.arange(items.shape[1])[None, :] < length[:, None])
        key = r * n1 + items[r, t]
        order = np.lexsort((t, key))
        last = np.r_[key[order[:-1]] != key[order[1:]], True] if len(order) else order > 0
        sel = order[last]
        cur_keys, cur_row, cur_pos = key[sel], r[sel], t[sel] + 1
        cur_item = cur_keys - cur_row * n1
        n_cur = np.bincount(cur_row, minlength=b)
        w = self.position_weights(cur_pos, length[cur_row])
        by_item = idx["by_item"]
        q_bin = sp.csr_matrix((np.ones(len(sel)), (cur_row, cur_item)), shape=(b, n1))
        q_w = sp.csr_matrix((w, (cur_row, cur_item)), shape=(b, n1))
        del r, t, key, order
        cand = (q_bin @ by_item).tocsr()  # (B, S): |s ∩ n| for every session sharing an item
        cand.sort_indices()
        # (1) the sample_size most recent candidates (largest session index) of each row
        row = np.repeat(np.arange(b), np.diff(cand.indptr))
        keep = np.ones(len(row), dtype=bool)
        if self.params.sample_size > 0:
            keep = cand.indptr[row + 1] - 1 - np.arange(len(row)) < self.params.sample_size
        row, sess, overlap = row[keep], cand.indices[keep], cand.data[keep]
        del cand, keep
        weighted = overlap if (w == 1).all() else self._weighted(q_w, row, sess)
        nb = Neighbourhood(
            length, n_cur, cur_keys, cur_pos, row, sess, overlap, weighted, idx["n_sess"][sess], n_s
        )
        # (2)-(3) similarity, then the k most similar (ties: the more recent session)
        sim = self.similarity(nb)
        pos = sim > 0
        order = np.lexsort((-sess[pos], -sim[pos], row[pos]))
        cut = np.flatnonzero(pos)[order]
        rank = np.arange(len(cut)) - np.searchsorted(row[cut], row[cut], side="left")
        cut = cut[rank < self.params.k]
        nb, sim = nb.subset(cut), sim[cut]
        # (4) expand neighbours to their distinct items, weight, and sum per (row, item)
        off, lens = self.sessions.offsets[nb.sess], self.sessions.lengths[nb.sess]
        pair = np.repeat(np.arange(len(cut)), lens)
        click = np.repeat(off - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))
        distinct = idx["last"][click]
        pair, click = pair[distinct], click[distinct]
        item = self.sessions.items[click]
        val = self.item_weights(nb, sim, pair, item, idx["pos"][click])
        flat, inv = np.unique(nb.row[pair] * n1 + item, return_inverse=True)
        scores = torch.zeros(b * n1)
        scores[torch.from_numpy(flat)] = torch.from_numpy(np.bincount(inv, val)).float()
        return scores.view(b, n1).to(self.device)

    def _weighted(self, q_w: sp.csr_matrix, row: np.ndarray, sess: np.ndarray) -> np.ndarray:
        """Σ_{i ∈ s ∩ n} w(i) for the pairs (row, sess), 0 where no weighted item is shared."""
        n_s = len(self.sessions)
        cand_w = (q_w @ self._index()["by_item"]).tocsr()
        cand_w.sort_indices()
        w_keys = np.repeat(np.arange(q_w.shape[0]), np.diff(cand_w.indptr)) * n_s + cand_w.indices
        if len(w_keys) == 0:
            return np.zeros(len(row))
        keys = row * n_s + sess
        at = np.searchsorted(w_keys, keys).clip(max=len(w_keys) - 1)
        return np.where(w_keys[at] == keys, cand_w.data[at], 0.0)

    def last_match(self, nb: Neighbourhood, pair: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Per entry: the position in the current session of its item (0 if absent)."""
        k = nb.row[pair] * (self.num_items + 1) + item
        at = np.searchsorted(nb.cur_keys, k).clip(max=max(len(nb.cur_keys) - 1, 0))
        return np.where(nb.cur_keys[at] == k, nb.cur_pos[at], 0)


def segment_max(values: np.ndarray, pair: np.ndarray, n_pairs: int) -> np.ndarray:
    """Max of `values` per pair (entries grouped by pair in order; every pair has one)."""
    if n_pairs == 0:
        return np.zeros(0, dtype=values.dtype)
    starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
    return np.maximum.reduceat(values, starts)


def _check(k: int, sample_size: int) -> None:
    if k < 1 or sample_size < 0:
        raise ConfigError(f"need k >= 1 and sample_size >= 0 (0 = all), got {k}, {sample_size}")


# --------------------------------------------------------------------------------------------
@dataclass
class SKNNParams:
    k: int = 100  # neighbours; session-rec ContextKNN: 100
    sample_size: int = 1000  # most recent candidate sessions; ContextKNN default 1000
    similarity: Literal["cosine", "jaccard"] = "cosine"  # paper: cosine of binary vectors

    def validate(self) -> None:
        _check(self.k, self.sample_size)


@register
class SKNN(SessionKNNBase):
    """SKNN (Ludewig & Jannach 2018, Sec. 3.2): score(i|s) = Σ_{n ∈ N_k(s)} sim(s, n) 1_n(i).

    sim = |s ∩ n| / sqrt(|s| |n|) over binary item sets (or Jaccard). session-rec's cosine
    computes |s ∩ n| / sqrt(|n|) * sqrt(|s|), which differs from this by a per-session constant
    and so ranks identically.
    """

    name = "sknn"
    description = "Session-kNN (Ludewig & Jannach 2018): items of the k most similar past sessions"
    Params = SKNNParams

    def similarity(self, nb: Neighbourhood) -> np.ndarray:
        if self.params.similarity == "jaccard":
            return nb.overlap / (nb.n_cur[nb.row] + nb.n_sess - nb.overlap)
        return nb.overlap / np.sqrt(nb.n_cur[nb.row] * nb.n_sess)


# --------------------------------------------------------------------------------------------
Decay = Literal["same", "div", "linear", "log", "quadratic"]


def position_decay(kind: str, pos: np.ndarray, length: np.ndarray) -> np.ndarray:
    """V-SKNN weight of the click at 1-based `pos` of `length` (1 for the last with div)."""
    pos, length = pos.astype(np.float64), length.astype(np.float64)
    return {
        "same": lambda: np.ones_like(pos),
        "div": lambda: pos / length,
        "linear": lambda: np.maximum(1.0 - 0.1 * (length - pos), 0.0),
        "log": lambda: 1.0 / np.log10(length - pos + 1.7),
        "quadratic": lambda: (pos / length) ** 2,
    }[kind]()


def step_decay(kind: str, step: np.ndarray) -> np.ndarray:
    """V-SKNN weight of a neighbour matched `step` clicks from the end (1 = the last click)."""
    step = step.astype(np.float64)
    return {
        "same": lambda: np.ones_like(step),
        "div": lambda: 1.0 / step,
        "linear": lambda: np.maximum(1.0 - 0.1 * step, 0.0),
        "log": lambda: 1.0 / np.log10(step + 1.7),
        "quadratic": lambda: 1.0 / step**2,
    }[kind]()


@dataclass
class VSKNNParams:
    k: int = 100  # session-rec VMContextKNN: 100
    sample_size: int = 1000  # VMContextKNN default 1000
    weighting: Decay = "div"  # paper: linear decay, 1 for the last click (pos / length)
    weighting_score: Decay = "div"  # VMContextKNN default: 1 / step
    idf_weighting: float = 1.0  # IDF term weight; session-rec: off by default, 5-10 tuned

    def validate(self) -> None:
        _check(self.k, self.sample_size)
        if self.idf_weighting < 0:
            raise ConfigError(f"idf_weighting must be >= 0, got {self.idf_weighting}")


@register
class VSKNN(SessionKNNBase):
    """V-SKNN (Ludewig & Jannach 2018; IDF as in Ludewig et al. 2019), after session-rec's code.

    sim(s, n) = Σ_{i ∈ s ∩ n} w(p_i) / |s| with w the position decay (default p / L, 1 for the
    last click); score(i|s) = Σ_n sim(s, n) · d(step_n) · (1 + λ_idf · idf(i)) · 1_n(i), where
    step_n = 1 + clicks after the most recent click of s that n contains (default d = 1/step) and
    idf(i) = log(S / sessions holding i). session-rec counts clicks, not sessions, for the idf
    and its `linear` decays go negative past 10 clicks; both are read as intended here.
    """

    name = "vsknn"
    description = "V-SKNN (Ludewig & Jannach 2018): session-kNN with position decay and IDF weights"
    Params = VSKNNParams

    def position_weights(self, pos: np.ndarray, length: np.ndarray) -> np.ndarray:
        return position_decay(self.params.weighting, pos, length)

    def similarity(self, nb: Neighbourhood) -> np.ndarray:
        return nb.weighted / nb.n_cur[nb.row]

    def item_weights(
        self, nb: Neighbourhood, sim: np.ndarray, pair: np.ndarray, item: np.ndarray, q: np.ndarray
    ) -> np.ndarray:
        newest = segment_max(self.last_match(nb, pair, item), pair, len(sim))
        step = nb.length[nb.row] - newest + 1
        decay = step_decay(self.params.weighting_score, step)
        idf = self._index()["idf"][item]
        return sim[pair] * decay[pair] * (1.0 + self.params.idf_weighting * idf)


# --------------------------------------------------------------------------------------------
@dataclass
class STANParams:
    k: int = 100  # session-rec STAN docstring: 100
    sample_size: int = 5000  # session-rec STAN default 5000
    lambda1: float = 1.02  # position in the current session; session-rec default 1.02
    lambda2: float = 6400.0  # recency, in sessions: session-rec's 5 days x ~1,280 Diginetica/day
    lambda3: float = 2.05  # distance in the neighbour session; session-rec default 2.05

    def validate(self) -> None:
        _check(self.k, self.sample_size)
        if min(self.lambda1, self.lambda2, self.lambda3) <= 0:
            raise ConfigError("STAN's lambda1, lambda2 and lambda3 must be positive")


@register
class STAN(SessionKNNBase):
    """STAN (Garg et al., SIGIR 2019): session-kNN with three exponential decays.

    w1(i|s) = exp((p(i, s) - l(s)) / λ1) for the current session's items (last click: 1);
    sim1(s, n) = Σ_{i ∈ s ∩ n} w1(i) / sqrt(|s| |n|); sim2 = sim1 · exp(-(t(s) - t(n)) / λ2)
    with t the session index (t(s) = S); the k most similar by sim2 are neighbours; and
    score(i|s) = Σ_n sim2(s, n) exp(-|p(i, n) - p(i*, n)| / λ3) 1_n(i), where i* is the most
    recent item of s that n contains (the paper's definition; session-rec uses the last
    position in n of any shared item instead). Positions in n are of last clicks.
    """

    name = "stan"
    description = "STAN (Garg et al. 2019): session-kNN with position, recency and distance decays"
    Params = STANParams

    def position_weights(self, pos: np.ndarray, length: np.ndarray) -> np.ndarray:
        return np.exp((pos - length) / self.params.lambda1)

    def similarity(self, nb: Neighbourhood) -> np.ndarray:
        recency = np.exp(-(nb.num_sessions - nb.sess) / self.params.lambda2)
        return nb.weighted / np.sqrt(nb.n_cur[nb.row] * nb.n_sess) * recency

    def item_weights(
        self, nb: Neighbourhood, sim: np.ndarray, pair: np.ndarray, item: np.ndarray, q: np.ndarray
    ) -> np.ndarray:
        match = self.last_match(nb, pair, item)
        newest = segment_max(match, pair, len(sim))
        star = (match == newest[pair]) & (match > 0)
        q_star = np.zeros(len(sim), dtype=np.int64)
        q_star[pair[star]] = q[star]
        return sim[pair] * np.exp(-np.abs(q - q_star[pair]) / self.params.lambda3)
