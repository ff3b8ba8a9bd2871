"""BPR-MF (Rendle et al., UAI 2009) with sessions as users, as in Hidasi et al. (ICLR 2016).

Training follows the GRU4Rec `BPRMF` baseline: every click (s, i) of a fitting session is a
positive pair, a negative j is drawn uniformly (never i itself; other items of s may be drawn),
and the loss is -ln σ(<w_s, h_i> - <w_s, h_j>) with a free factor w_s per training session. A new
session has no factor, so it is represented by the mean of its items' factors h (Hidasi et al.):
score(i | s) = <mean_{l ∈ s} h_l, h_i>. No item bias (the paper has none; GRU4Rec's stays 0).

Choices: mini-batches of `batch_size` clicks with SparseAdam at `lr` instead of per-click SGD;
`weight_decay` is BPR's λ, applied (as in LearnBPR) only to the factors a sample touches.
The model overrides `fit` (session factors are not part of the saved model), selects the epoch
with the best validation metric and stops early like the Trainer, but does not checkpoint:
`--resume` refits from the start.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from sessionrec.evaluation import evaluate
from sessionrec.io import append_jsonl
from sessionrec.models.base import NeuralRecommender
from sessionrec.models.fpmc import bpr_loss, sample_negatives
from sessionrec.models.itemknn import fit_sessions
from sessionrec.models.layers import masked_mean, score_all_items
from sessionrec.models.registry import register
from sessionrec.rundir import LOG_FILE
from sessionrec.training.config import TrainConfig, resolve_device
from sessionrec.training.trainer import epoch_seed

if TYPE_CHECKING:
    from sessionrec.data.dataset import SessionDataset


@dataclass
class BPRMFParams:
    embedding_dim: int = 100  # GRU4Rec BPRMF baseline: n_factors = 100
    init_range: float = 0.05  # GRU4Rec BPRMF baseline: uniform(-σ, σ), σ = 0.05


class BPRMF(nn.Module):
    def __init__(self, num_items: int, p: BPRMFParams) -> None:
        super().__init__()
        self.item_emb = nn.Embedding(num_items + 1, p.embedding_dim, padding_idx=0, sparse=True)
        nn.init.uniform_(self.item_emb.weight, -p.init_range, p.init_range)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def session_vectors(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return masked_mean(self.item_emb(items), items > 0)  # a new session: mean item factor

    def item_vectors(self) -> torch.Tensor:
        return self.item_emb.weight

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # x̂_si = <w_s, h_i>
        return score_all_items(self.session_vectors(items, lengths), self.item_vectors())


@register
class BPRMFRecommender(NeuralRecommender):
    name = "bprmf"
    description = "BPR-MF (Rendle et al. 2009): sessions as users, a new session = mean item factor"
    Params = BPRMFParams
    Module = BPRMF

    def fit(
        self,
        dataset: SessionDataset,
        config: TrainConfig | None = None,
        run_dir: str | Path | None = None,
        progress: bool = False,
        resume: bool = False,
    ) -> BPRMFRecommender:
        cfg = config or TrainConfig()
        cfg.validate()
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.to(resolve_device(cfg.device))
        log = Path(run_dir) / LOG_FILE if run_dir is not None else None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.unlink(missing_ok=True)
        sessions = fit_sessions(dataset)
        user_of = torch.from_numpy(np.repeat(np.arange(len(sessions)), sessions.lengths))
        item_of = torch.from_numpy(sessions.items)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            users = nn.Embedding(len(sessions), self.params.embedding_dim, sparse=True)
            nn.init.uniform_(users.weight, -self.params.init_range, self.params.init_range)
        users.to(self.device)
        gen = torch.Generator().manual_seed(cfg.seed)
        opt = torch.optim.SparseAdam([users.weight, self.net.item_emb.weight], lr=cfg.lr)
        best, best_weights, bad, started = -math.inf, None, 0, time.monotonic()
        self.best_epoch, self.fit_history = -1, []
        budget = cfg.max_minutes * 60 if cfg.max_minutes else math.inf
        for epoch in range(cfg.epochs):
            t0, loss_sum, steps = time.monotonic(), 0.0, 0
            rng = np.random.default_rng(epoch_seed(cfg.seed, epoch))
            perm = torch.from_numpy(rng.permutation(len(item_of)))
            self.net.train()
            for chunk in perm.split(cfg.batch_size):
                u, pos = user_of[chunk].to(self.device), item_of[chunk]
                neg = sample_negatives(pos, self.num_items, gen).to(self.device)
                loss = self._loss(users(u), pos.to(self.device), neg, cfg.weight_decay)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum, steps = loss_sum + loss.item(), steps + 1
                if time.monotonic() - started >= budget:
                    break
            record: dict[str, Any] = {
                "event": "epoch",
                "epoch": epoch + 1,
                "loss": loss_sum / max(steps, 1),
                "seconds": round(time.monotonic() - t0, 2),
                "steps_done": steps,
            }
            if len(dataset.valid):
                valid = evaluate(
                    self,
                    dataset.valid,
                    cfg.ks,
                    cfg.eval_batch_size,
                    tie_policy=cfg.tie_policy,
                    max_len=cfg.max_len,
                ).metrics
                record["valid"] = valid
                if valid[cfg.metric] > best:
                    best, bad, self.best_epoch = valid[cfg.metric], 0, epoch + 1
                    best_weights = self.net.item_emb.weight.detach().clone()
                else:
                    bad += 1
            else:
                self.best_epoch = epoch + 1
            record["best_epoch"] = self.best_epoch
            self.fit_history.append(record)
            if log is not None:
                append_jsonl(log, record)
            if progress:
                print(f"epoch {epoch + 1}: loss {record['loss']:.4f}, {record['seconds']} s")
            if bad > cfg.patience or time.monotonic() - started >= budget:
                break
        if best_weights is not None:
            with torch.no_grad():
                self.net.item_emb.weight.copy_(best_weights)
        return self

    def _loss(
        self, w_u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, reg: float
    ) -> torch.Tensor:
        """BPR loss of (session, positive, negative) triples plus λ/2 ‖θ‖² on the rows used."""
        h_pos, h_neg = self.net.item_emb(pos), self.net.item_emb(neg)
        loss = bpr_loss((w_u * h_pos).sum(1), (w_u * h_neg).sum(1))
        if reg > 0:
            loss = loss + reg / 2 * (w_u.square() + h_pos.square() + h_neg.square()).sum(1).mean()
        return loss
