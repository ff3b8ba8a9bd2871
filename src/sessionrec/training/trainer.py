"""The `Trainer`: fits any `NeuralRecommender` with Adam, early stopping and resumable checkpoints.

Each epoch's batch order depends only on (seed, epoch), and the checkpoint stores the
optimizer, the torch RNG and the position inside the epoch, so a run that is killed and
resumed ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sessionrec.data.batching import batch_indices, collate
from sessionrec.errors import RunError
from sessionrec.evaluation import evaluate
from sessionrec.io import append_jsonl, atomic_write
from sessionrec.training.config import TrainConfig, resolve_device

if TYPE_CHECKING:
    from sessionrec.data.dataset import SessionDataset
    from sessionrec.models.base import NeuralRecommender

CHECKPOINT_FILE, LOG_FILE = "checkpoint.pt", "log.jsonl"


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of one epoch's batch order."""
    return (seed * 1_000_003 + epoch) % (2**63)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a trainer checkpoint with `weights_only=True` (plain tensors and containers only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"{path.parent}: no checkpoint to resume from") from None
    except Exception as e:
        raise RunError(f"{path}: corrupted or unsafe checkpoint ({type(e).__name__})") from None


class Trainer:
    """Mini-batch training of `model.net` on `dataset.train`, selecting on `dataset.valid`."""

    def __init__(
        self,
        model: NeuralRecommender,
        config: TrainConfig | None = None,
        run_dir: str | Path | None = None,
        progress: bool = False,
    ) -> None:
        self.model = model
        self.config = config or TrainConfig()
        self.config.validate()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self.history: list[dict[str, Any]] = []
        self.best_epoch = -1

    # --- persistence -----------------------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.run_dir is not None:
            append_jsonl(self.run_dir / LOG_FILE, record)

    def _save_checkpoint(self, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        if self.run_dir is None:
            return
        payload = dict(
            state,
            net=self.model.net.state_dict(),
            optimizer=opt.state_dict(),
            rng=torch.get_rng_state(),
        )
        atomic_write(self.run_dir / CHECKPOINT_FILE, lambda tmp: torch.save(payload, tmp))

    def _restore(self, opt: torch.optim.Optimizer) -> dict[str, Any]:
        assert self.run_dir is not None
        ckpt = load_checkpoint(self.run_dir / CHECKPOINT_FILE)
        try:
            self.model.net.load_state_dict(ckpt.pop("net"))
            opt.load_state_dict(ckpt.pop("optimizer"))
            torch.set_rng_state(ckpt.pop("rng"))
        except (KeyError, RuntimeError, ValueError) as e:
            raise RunError(
                f"{self.run_dir / CHECKPOINT_FILE}: does not fit this model ({e})"
            ) from None
        return ckpt

    # --- training --------------------------------------------------------------------------
    def fit(self, dataset: SessionDataset, resume: bool = False) -> NeuralRecommender:
        cfg, model = self.config, self.model
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        model.to(resolve_device(cfg.device))
        opt = torch.optim.Adam(model.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        state: dict[str, Any] = {
            "epoch": 0,
            "step": 0,
            "best": -math.inf,
            "best_epoch": -1,
            "bad_epochs": 0,
            "elapsed": 0.0,
            "finished": False,
        }
        if resume:
            if self.run_dir is None:
                raise RunError("resume needs a run directory")
            state.update(self._restore(opt))
        else:
            torch.manual_seed(cfg.seed)
            if self.run_dir is not None:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                (self.run_dir / LOG_FILE).unlink(missing_ok=True)
        best_weights = None
        has_valid = len(dataset.valid) > 0
        started = time.monotonic() - state["elapsed"]
        budget = cfg.max_minutes * 60 if cfg.max_minutes else math.inf
        if resume and state["step"] == 0:  # the budget may have been extended on resume
            state["finished"] = (
                (has_valid and state["bad_epochs"] > cfg.patience)
                or state["epoch"] >= cfg.epochs
                or state["elapsed"] >= budget
            )
        console = Console(stderr=True)
        with Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[speed]:,.0f} ex/s"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.progress,
        ) as bar:
            while not state["finished"] and state["epoch"] < cfg.epochs:
                epoch = state["epoch"]
                if cfg.lr_decay_every:  # a function of the epoch, so resuming stays exact
                    for group in opt.param_groups:
                        group["lr"] = cfg.lr * cfg.lr_decay ** (epoch // cfg.lr_decay_every)
                batches = batch_indices(
                    dataset.train, cfg.batch_size, shuffle=True, seed=epoch_seed(cfg.seed, epoch)
                )
                task = bar.add_task(
                    "train",
                    total=len(batches),
                    completed=state["step"],
                    epoch=epoch + 1,
                    loss=0.0,
                    speed=0.0,
                )
                model.net.train()
                t_epoch, last_ckpt, seen, loss_sum, window = (
                    time.monotonic(),
                    time.monotonic(),
                    0,
                    0.0,
                    [],
                )
                for step in range(state["step"], len(batches)):
                    batch = collate(dataset.train, batches[step], cfg.max_len).to(model.device)
                    loss = model.training_loss(batch)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip:
                        torch.nn.utils.clip_grad_norm_(model.net.parameters(), cfg.grad_clip)
                    opt.step()
                    value = loss.item()
                    if not math.isfinite(value):
                        raise FloatingPointError(
                            f"training loss became {value} at epoch {epoch + 1}, "
                            f"step {step + 1}; lower the learning rate"
                        )
                    seen += len(batch.targets)
                    loss_sum += value * len(batch.targets)
                    window.append(value)
                    speed = seen / max(time.monotonic() - t_epoch, 1e-9)
                    bar.update(task, advance=1, loss=loss_sum / seen, speed=speed)
                    state["step"] = step + 1
                    if (step + 1) % cfg.log_every == 0:
                        self._log(
                            {
                                "event": "train",
                                "epoch": epoch + 1,
                                "step": step + 1,
                                "loss": sum(window) / len(window),
                                "examples_per_s": round(speed, 1),
                            }
                        )
                        window = []
                    state["elapsed"] = time.monotonic() - started
                    if time.monotonic() - last_ckpt >= cfg.checkpoint_seconds:
                        self._save_checkpoint(opt, state)
                        last_ckpt = time.monotonic()
                    if state["elapsed"] >= budget:
                        break
                bar.remove_task(task)
                record: dict[str, Any] = {
                    "event": "epoch",
                    "epoch": epoch + 1,
                    "loss": loss_sum / max(seen, 1),
                    "seconds": round(time.monotonic() - t_epoch, 2),
                    "steps_done": state["step"],
                    "steps": len(batches),
                }
                if has_valid:
                    valid = evaluate(
                        model,
                        dataset.valid,
                        cfg.ks,
                        cfg.eval_batch_size,
                        tie_policy=cfg.tie_policy,
                        max_len=cfg.max_len,
                    ).metrics
                    record["valid"] = valid
                    if valid[cfg.metric] > state["best"]:
                        state.update(best=valid[cfg.metric], best_epoch=epoch + 1, bad_epochs=0)
                        best_weights = self._keep_best(best_weights)
                    else:
                        state["bad_epochs"] += 1
                else:
                    state["best_epoch"] = epoch + 1
                state.update(epoch=epoch + 1, step=0, elapsed=time.monotonic() - started)
                out_of_budget = state["elapsed"] >= budget
                stop = has_valid and state["bad_epochs"] > cfg.patience
                state["finished"] = stop or out_of_budget or state["epoch"] >= cfg.epochs
                record.update(
                    best_epoch=state["best_epoch"], stopped_early=stop, out_of_budget=out_of_budget
                )
                self._log(record)
                if self.progress:
                    console.print(self._epoch_line(record, cfg.metric))
                self._save_checkpoint(opt, state)
        self.best_epoch = state["best_epoch"]
        if has_valid:
            self._restore_best(best_weights)
        return model

    def _keep_best(
        self, best_weights: dict[str, torch.Tensor] | None
    ) -> dict[str, torch.Tensor] | None:
        """Remember the best weights: on disk in the run directory, else in memory."""
        if self.run_dir is not None:
            self.model.save(self.run_dir)
            return None
        return copy.deepcopy(self.model.net.state_dict())

    def _restore_best(self, best_weights: dict[str, torch.Tensor] | None) -> None:
        if best_weights is not None:
            self.model.net.load_state_dict(best_weights)
        elif self.run_dir is not None and (self.run_dir / "model.safetensors").exists():
            from safetensors.torch import load_file

            self.model.load_state_tensors(load_file(self.run_dir / "model.safetensors"))

    @staticmethod
    def _epoch_line(record: dict[str, Any], metric: str) -> str:
        valid = record.get("valid", {})
        shown = f", valid {metric} {valid[metric]:.4f}" if metric in valid else ""
        return (
            f"epoch {record['epoch']}: loss {record['loss']:.4f}{shown}, "
            f"{record['seconds']:.1f} s (best epoch {record['best_epoch']})"
        )
