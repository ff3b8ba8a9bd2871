"""The `Trainer`: the one training loop, with hooks for models that train differently.

`fit` runs epochs (resume, time budget, early stopping), `train_epoch` the steps of one epoch,
`end_epoch` validation, best weights, log and checkpoint. A model that trains differently
subclasses it through `setup`, `train_steps` and `extra_state` / `load_extra_state`, and
names the subclass in `trainer_class`.

Spec: docs/design.md#training
Under torchrun: docs/distributed.md#what-is-sharded-and-what-is-replicated
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sessionrec.data.batching import Batch, batch_indices, collate, shard_batches
from sessionrec.errors import ConfigError, RunError
from sessionrec.evaluation import evaluate_splits
from sessionrec.io import append_jsonl, atomic_write
from sessionrec.progress import shown
from sessionrec.rundir import (
    CHECKPOINT_FILE,
    LOG_FILE,
    WEIGHTS_FILE,
    load_checkpoint,
    read_weights,
    write_weights,
)
from sessionrec.training import distributed
from sessionrec.training.config import TrainConfig, native_bf16, use_threads
from sessionrec.training.schedule import decay_factor, warmup_factor

if TYPE_CHECKING:
    from sessionrec.data.dataset import SessionDataset
    from sessionrec.models.base import NeuralRecommender


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of one epoch's batch order."""
    return (seed * 1_000_003 + epoch) % (2**63)


def rank_seed(seed: int, rank: int) -> int:
    """Seed of rank `rank`'s torch RNG (dropout, sampling); rank 0 uses the run's seed."""
    return seed if rank == 0 else (seed * 1_000_003 + 7_919 * rank) % (2**63)


def batch_loss(net: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """The module's own objective, `net.training_loss(batch)`, when it defines one (extra
    terms, sampled negatives, a mixture); else cross-entropy of its logits over all items."""
    custom = getattr(net, "training_loss", None)
    if custom is not None:
        return custom(batch)
    return torch.nn.functional.cross_entropy(net(batch.items, batch.lengths), batch.targets)


def adam(
    params: Iterable[torch.nn.Parameter] | list[dict[str, Any]],
    lr: float,
    weight_decay: float,
    device: torch.device,
) -> torch.optim.Adam:
    """Adam, with torch's fused kernel where it has one: the same update in one pass per tensor
    (measured: 5 vs 19 ms per NARM step on Diginetica's 4.3M-parameter item table, 1 thread).
    `params`: tensors, or torch's parameter groups (dicts with "params" and own settings)."""
    params = list(params)
    groups = params if params and isinstance(params[0], dict) else [{"params": params}]
    tensors = [p for g in groups for p in g["params"]]
    fused = device.type in ("cpu", "cuda") and all(p.is_floating_point() for p in tensors)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


def optimizer_params(net: torch.nn.Module, lr: float) -> Any:
    """The module's own parameter groups, `net.optimizer_groups(lr)`, when it defines them
    (a per-tensor learning rate, as nanoGPT lets the model shape its optimiser); else all
    its parameters at `lr`."""
    groups = getattr(net, "optimizer_groups", None)
    return groups(lr) if groups is not None else net.parameters()


@dataclass(frozen=True)
class Step:
    """One training step, as `train_steps` reports it to the loop."""

    done: int  # batches of the epoch done after this step (summed over ranks)
    total: int | None  # batches in the epoch (None: not known in advance)
    examples: int  # examples the step trained on, over all ranks
    loss: float  # this rank's loss (weighted by its share of the step when W > 1)
    mine: int  # examples of this rank


def _fresh_state(threads: int) -> dict[str, Any]:
    return {
        "epoch": 0,
        "step": 0,  # batches of the epoch done (summed over ranks)
        "best": -math.inf,
        "best_epoch": -1,
        "bad_epochs": 0,
        "elapsed": 0.0,
        "updates": 0,  # optimiser steps so far (the warm-up counts them)
        "epoch_steps": None,  # batches in an epoch, once an epoch has reported it
        "finished": False,
        "threads": threads,
        "amp": None,  # amp=auto: bf16 chosen (True) or not (False); None until measured
    }


def not_applied_error(model: str, key: str) -> ConfigError:
    """The one error for a step setting a trainer with steps of its own does not read."""
    return ConfigError(f"'{key}' does not apply to {model}: it trains with steps of its own")


class Trainer:
    """Mini-batch training of `model.net` on `dataset.train`, selecting on `dataset.valid`."""

    multi_process: ClassVar[bool] = True  # whether `train_steps` can train on many ranks
    # Settings only this class's `train_steps` reads: a trainer with steps of its own (GRU4Rec,
    # BPR-MF) refuses them away from their defaults rather than ignore them.
    STEP_SETTINGS: ClassVar[tuple[str, ...]] = (
        "grad_clip",
        "grad_clip_per_param",
        "loss_reduction",
        "batching",
    )

    def __init__(
        self,
        model: NeuralRecommender,
        config: TrainConfig | None = None,
        run_dir: str | Path | None = None,
        progress: bool = False,
    ) -> None:
        self.model = model
        self.config = config or TrainConfig(**type(model).train_defaults)
        self.config.validate()
        self._refuse_unused_step_settings()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self.history: list[dict[str, Any]] = []
        self.best_epoch = -1
        self.prior_seconds = 0.0
        self.world = distributed.current()
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.console = Console(stderr=True)

    # --- hooks -----------------------------------------------------------------------------
    @classmethod
    def not_applied(cls) -> tuple[str, ...]:
        """The STEP_SETTINGS, where this trainer's `train_steps` is its own; else none."""
        return () if cls.train_steps is Trainer.train_steps else cls.STEP_SETTINGS

    def _refuse_unused_step_settings(self) -> None:
        default = TrainConfig()
        for name in self.not_applied():
            if getattr(self.config, name) != getattr(default, name):
                raise not_applied_error(self.model.name, name)

    def setup(self, dataset: SessionDataset) -> torch.optim.Optimizer:
        """Build what the steps need once, before any checkpoint is loaded; return the optimiser.

        Default: Adam on the module's parameters, and `batch_loss` (under DDP when W > 1).
        """
        cfg, model = self.config, self.model
        if self.world.enabled:
            self.step_loss = distributed.ddp_loss(model.net, batch_loss, model.device)
        else:
            self.step_loss = partial(batch_loss, model.net)
        native = native_bf16(model.device)
        if cfg.amp and not native and self.world.is_main:
            self.console.print(
                f"note: amp: {model.device.type} has no native bf16 (no AMX or AVX-512 BF16); "
                "training in float32",
                highlight=False,
            )
        # amp=auto starts disabled; `_choose_precision` decides before the first step
        enabled = cfg.amp is True and native
        self.autocast = torch.autocast(model.device.type, torch.bfloat16, enabled=enabled)
        return adam(optimizer_params(model.net, cfg.lr), cfg.lr, cfg.weight_decay, model.device)

    def train_steps(self, dataset: SessionDataset, epoch: int, start: int) -> Iterator[Step]:
        """Run the steps of epoch `epoch` (0-based) from batch `start` on, one `Step` each."""
        cfg, model, w = self.config, self.model, self.world.world_size
        batches = batch_indices(
            dataset.train,
            cfg.batch_size,
            shuffle=True,
            seed=epoch_seed(cfg.seed, epoch),
            bucket_batches=cfg.bucket_batches,
            sessions=cfg.batching == "sessions",
        )
        n = len(batches)
        for k, mine in enumerate(shard_batches(batches, self.world.rank, w, start)):
            pos = start + k * w  # batches done before this step
            # a rank past the end of the epoch runs batch `pos` with weight 0
            idx = batches[pos] if mine is None else mine
            batch = collate(dataset.train, idx, cfg.max_len).to(model.device)
            with self.autocast:
                loss = self.step_loss(batch)
            self.optimizer.zero_grad(set_to_none=True)
            if w > 1:  # DDP averages over ranks: weigh each by its share of examples
                n_step = sum(len(b) for b in batches[pos : pos + w])
                n_mine = 0 if mine is None else len(mine)
                weight = n_mine * w / n_step
            else:
                n_step = n_mine = len(batch.targets)
                weight = 1.0
            if cfg.loss_reduction == "sum":  # the mean over the step's examples, times them
                weight *= n_step
            (loss if weight == 1.0 else loss * weight).backward()
            if cfg.grad_clip:
                self.clip_gradients(cfg.grad_clip, cfg.grad_clip_per_param)
            self.optimizer.step()
            yield Step(min(pos + w, n), n, n_step, loss.item(), n_mine)

    def _choose_precision(self, dataset: SessionDataset, state: dict[str, Any]) -> None:
        """amp=auto: train under bf16 autocast only where it measured faster than float32 here,
        since native bf16 is a gain on some CPUs and a loss on others
        (docs/performance.md#bf16-on-cpu). Measured once per run; a resumed run keeps its
        choice; every rank takes rank 0's."""
        device = self.model.device
        if self.config.amp != "auto" or not native_bf16(device):
            return
        if state["amp"] is None:
            times = self.time_precisions(dataset)
            choice = times["bf16"] < 0.95 * times["float32"]
            if self.world.enabled:
                choice = distributed.all_gather_objects(choice)[0]
            state["amp"] = choice
            self._log({"event": "precision", "bf16": choice, "step_seconds": times})
            if self.world.is_main:
                self.console.print(
                    f"amp=auto: a step takes {times['float32']:.3f} s in float32, "
                    f"{times['bf16']:.3f} s under bf16 autocast: training in "
                    f"{'bf16' if choice else 'float32'}",
                    highlight=False,
                )
        self.autocast = torch.autocast(device.type, torch.bfloat16, enabled=state["amp"])

    def time_precisions(self, dataset: SessionDataset, rounds: int = 4) -> dict[str, float]:
        """The fastest of `rounds` − 1 forward + backward passes (after one warm-up) on the
        same training batch in float32 and under bf16 autocast, alternately. No optimiser
        step is taken and the RNG is restored: training starts as if this had not run."""
        cfg, device = self.config, self.model.device
        order = np.random.default_rng(cfg.seed).permutation(len(dataset.train))
        batch = collate(dataset.train, order[: cfg.batch_size], cfg.max_len).to(device)
        best = {"float32": math.inf, "bf16": math.inf}
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for r in range(rounds):
                for name in best:
                    start = time.perf_counter()
                    with torch.autocast(device.type, torch.bfloat16, enabled=name == "bf16"):
                        loss = self.step_loss(batch)
                    loss.backward()
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    seconds = time.perf_counter() - start
                    self.optimizer.zero_grad(set_to_none=True)
                    if r:
                        best[name] = min(best[name], seconds)
        return best

    def clip_gradients(self, max_norm: float, per_param: bool) -> None:
        """Scale the gradients to norm `max_norm`: all together, or each parameter's apart."""
        params = [p for p in self.model.net.parameters() if p.grad is not None]
        if not per_param:
            torch.nn.utils.clip_grad_norm_(params, max_norm)
            return
        for p in params:  # tf.clip_by_norm on each variable
            p.grad.mul_((max_norm / (p.grad.norm() + 1e-6)).clamp(max=1.0))

    def extra_state(self) -> dict[str, Any]:
        """What the checkpoint must hold besides weights, optimiser, RNG and the loop's state."""
        return {}

    def load_extra_state(self, checkpoint: dict[str, Any]) -> None:
        """Take (pop) this trainer's `extra_state` keys from a loaded checkpoint."""

    # --- the loop --------------------------------------------------------------------------
    def fit(self, dataset: SessionDataset, resume: bool = False) -> NeuralRecommender:
        cfg, model = self.config, self.model
        use_threads(cfg)
        self.optimizer = self.setup(dataset)
        self.initial_lrs = [group["lr"] for group in self.optimizer.param_groups]
        state = self._start(resume)
        self._choose_precision(dataset, state)
        self.started = time.monotonic() - state["elapsed"]
        self.budget = cfg.max_minutes * 60 if cfg.max_minutes else math.inf
        if resume:  # the budget may have been extended: a cut epoch then goes on
            state["finished"] = self._finished(dataset, state)
        with self._progress_bar() as bar:
            while not state["finished"] and state["epoch"] < cfg.epochs:
                self._set_lr(state)
                record = self.train_epoch(dataset, state, bar)
                self.end_epoch(dataset, state, record)
        # a budget that cut the first epoch leaves its weights, the only ones there are
        self.best_epoch = state["best_epoch"] if state["best_epoch"] > 0 else state["epoch"] + 1
        if len(dataset.valid):
            self._restore_best()
        model.net.eval()  # fitted: ready to score
        return model

    def train_epoch(self, dataset: SessionDataset, state: dict[str, Any], bar: Progress) -> dict:
        """Run one epoch's steps from `state["step"]` on; the epoch's record for the log."""
        cfg, w, epoch = self.config, self.world.world_size, state["epoch"]
        task = bar.add_task(
            "train", total=None, completed=state["step"], epoch=epoch + 1, loss=0.0, speed=0.0
        )
        trace = os.environ.get(distributed.TRACE_ENV)
        self.model.net.train()
        t_epoch = last_ckpt = time.monotonic()
        seen, loss_sum, window, total, before = 0, 0.0, [], None, state["step"]
        for step in self.train_steps(dataset, epoch, state["step"]):
            value, total = step.loss, step.total
            if w > 1:  # the step's mean loss; mean clocks, so every rank decides alike
                now = time.monotonic()
                summed, elapsed, since = distributed.all_sum(
                    [value * step.mine, now - self.started, now - last_ckpt]
                )
                value = summed / step.examples
            if trace:
                self._trace(trace, epoch, step.done)
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"{self.model.name}: training loss became {value} at epoch {epoch + 1}, "
                    f"step {step.done}; lower the learning rate"
                )
            seen += step.examples
            loss_sum += value * step.examples
            window.append(value)
            speed = seen / max(time.monotonic() - t_epoch, 1e-9)
            bar.update(task, total=total, completed=step.done, loss=loss_sum / seen, speed=speed)
            state["step"] = step.done
            if step.done // (w * cfg.log_every) > before // (w * cfg.log_every):
                self._log(
                    {
                        "event": "train",
                        "epoch": epoch + 1,
                        "step": step.done,
                        "loss": sum(window) / len(window),
                        "examples_per_s": round(speed, 1),
                    }
                )
                window = []
            before = step.done
            if w > 1:
                state["elapsed"] = elapsed / w
                due = since / w >= cfg.checkpoint_seconds
            else:
                state["elapsed"] = time.monotonic() - self.started
                due = time.monotonic() - last_ckpt >= cfg.checkpoint_seconds
            state["updates"] += 1
            state["epoch_steps"] = total
            self._set_lr(state)  # for the next step
            if due:
                self._save_checkpoint(state)
                last_ckpt = time.monotonic()
            if state["elapsed"] >= self.budget:
                break
        bar.remove_task(task)
        record: dict[str, Any] = {
            "event": "epoch",
            "epoch": epoch + 1,
            "loss": loss_sum / max(seen, 1),
            "seconds": round(time.monotonic() - t_epoch, 2),
            "steps_done": state["step"],
            "steps": total,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        if w > 1:
            record["world_size"] = w
        return record

    def end_epoch(self, dataset: SessionDataset, state: dict[str, Any], record: dict) -> None:
        """Validate, keep the best weights, decide whether to go on, log and checkpoint.

        An epoch the time budget cut part-way is validated and logged (`partial`) but is no
        candidate for selection (unless the lr schedule's horizon is that budget), and the
        checkpoint keeps its position: a resume with more time finishes it, as if the run had
        never stopped.
        """
        cfg, epoch = self.config, state["epoch"]
        partial = record["steps"] is not None and record["steps_done"] < record["steps"]
        splits = ("valid",) if len(dataset.valid) else ()
        if cfg.test_curve and len(dataset.test):  # a diagnostic: no selection reads "test"
            splits += ("test",)
        if splits:
            record.update(self._evaluate(dataset, splits))
        if partial:  # epoch and step stay where the budget stopped them
            if cfg.lr_horizon == "budget":  # the schedule's last, lowest-rate steps: a candidate
                self._select(dataset, state, record.get("valid"))
            state["finished"] = True
            record.update(partial=True, stopped_early=False, out_of_budget=True)
        else:
            self._select(dataset, state, record.get("valid"))
            elapsed = time.monotonic() - self.started
            if self.world.enabled:
                elapsed = distributed.all_sum([elapsed])[0] / self.world.world_size
            state.update(epoch=epoch + 1, step=0, elapsed=elapsed)
            state["finished"] = self._finished(dataset, state)
            record.update(
                stopped_early=self._stopped_early(dataset, state),
                out_of_budget=state["elapsed"] >= self.budget,
            )
        record["best_epoch"] = state["best_epoch"]
        self._log(record)
        if self.progress and self.world.is_main:
            cut = " (cut part-way by the time budget)" if partial else ""
            self.console.print(self._epoch_line(record, cfg.metric) + cut)
        self._save_checkpoint(state)

    def _select(
        self, dataset: SessionDataset, state: dict[str, Any], valid: dict[str, float] | None
    ) -> None:
        """Model selection on a finished epoch: keep its weights when validation improved."""
        epoch, metric = state["epoch"], self.config.metric
        if valid is None:
            state["best_epoch"] = epoch + 1
        elif valid[metric] > state["best"]:
            state.update(best=valid[metric], best_epoch=epoch + 1, bad_epochs=0)
            self._keep_best()
        else:
            state["bad_epochs"] += 1

    def _evaluate(
        self, dataset: SessionDataset, splits: tuple[str, ...]
    ) -> dict[str, dict[str, float]]:
        with shown(False):  # inside this loop's own bar
            return evaluate_splits(self.model, dataset, self.config, splits, self.world.enabled)

    def _stopped_early(self, dataset: SessionDataset, state: dict[str, Any]) -> bool:
        return len(dataset.valid) > 0 and state["bad_epochs"] > self.config.patience

    def _finished(self, dataset: SessionDataset, state: dict[str, Any]) -> bool:
        return (
            self._stopped_early(dataset, state)
            or state["epoch"] >= self.config.epochs
            or state["elapsed"] >= self.budget
        )

    def _set_lr(self, state: dict[str, Any]) -> None:
        """Each group's rate for the next step: the schedule's factor (training.schedule) of
        its rate when `setup` built the optimiser (whichever optimiser the trainer chose), a
        function of the loop's state, so resuming stays exact."""
        cfg = self.config
        if cfg.lr_schedule == "step":
            every = cfg.lr_decay_every
            factor = cfg.lr_decay ** (state["epoch"] // every) if every else 1.0
        else:
            factor = decay_factor(cfg.lr_schedule, self._progress(state), cfg.lr_final)
        factor *= warmup_factor(state["updates"], cfg.lr_warmup_steps)
        for group, lr in zip(self.optimizer.param_groups, self.initial_lrs, strict=True):
            group["lr"] = lr * factor

    def _progress(self, state: dict[str, Any]) -> float:
        """How far along the schedule's horizon: the time budget, or the epochs (by step where
        the epoch's length is known, else by epoch)."""
        if self.config.lr_horizon == "budget":
            return state["elapsed"] / self.budget
        steps = state["epoch_steps"]
        return (state["epoch"] + (state["step"] / steps if steps else 0.0)) / self.config.epochs

    def _progress_bar(self) -> Progress:
        return Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[speed]:,.0f} ex/s"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not (self.progress and self.world.is_main),
        )

    # --- the run directory -----------------------------------------------------------------
    def _start(self, resume: bool) -> dict[str, Any]:
        """The loop's state: fresh (seeding the RNG, clearing the log) or from the checkpoint."""
        state = _fresh_state(torch.get_num_threads())
        if resume:
            if self.run_dir is None:
                raise RunError("resume needs a run directory")
            saved = self._restore()
            self._note_thread_change(saved.pop("threads", state["threads"]), state["threads"])
            state.update(saved)
            self.prior_seconds = state["elapsed"]  # training time before this process
        else:
            torch.manual_seed(rank_seed(self.config.seed, self.world.rank))
            if self.run_dir is not None and self.world.is_main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                (self.run_dir / LOG_FILE).unlink(missing_ok=True)
        return state

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.run_dir is not None and self.world.is_main:
            append_jsonl(self.run_dir / LOG_FILE, record)

    def _rng_states(self) -> dict[str, torch.Tensor]:
        states = {"rng": torch.get_rng_state()}
        if self.model.device.type == "cuda":
            states["cuda_rng"] = torch.cuda.get_rng_state(self.model.device)
        return states

    def _save_checkpoint(self, state: dict[str, Any]) -> None:
        if self.run_dir is None:
            return
        rngs = self._rng_states()
        if self.world.enabled:  # every rank's RNG, so a resumed rank continues its own stream
            gathered = distributed.all_gather_objects(rngs)
            rngs.update({f"rank_{k}": torch.stack([g[k] for g in gathered]) for k in rngs})
            rngs["world_size"] = self.world.world_size
        if not self.world.is_main:
            return
        payload = dict(
            state,
            net=self.model.net.state_dict(),
            optimizer=self.optimizer.state_dict(),
            **rngs,
            **self.extra_state(),
        )
        atomic_write(self.run_dir / CHECKPOINT_FILE, lambda tmp: torch.save(payload, tmp))

    def _restore(self) -> dict[str, Any]:
        """Load weights, optimiser, RNG and extra state; return the loop's saved state."""
        assert self.run_dir is not None
        ckpt = load_checkpoint(self.run_dir / CHECKPOINT_FILE)
        try:
            self.model.net.load_state_dict(ckpt.pop("net"))
            self.optimizer.load_state_dict(ckpt.pop("optimizer"))
            rngs = {k: ckpt.pop(k) for k in list(ckpt) if k.endswith("rng")}
            saved_world = ckpt.pop("world_size", 1)
            self._set_rng(rngs, saved_world)
            self.load_extra_state(ckpt)
        except (KeyError, RuntimeError, ValueError) as e:
            raise RunError(
                f"{self.run_dir / CHECKPOINT_FILE}: does not fit this model ({e})"
            ) from None
        return {k: v for k, v in ckpt.items() if k in _fresh_state(0)}

    def _set_rng(self, rngs: dict[str, torch.Tensor], saved_world: int) -> None:
        """This rank's saved RNG state; a rank the checkpoint did not have starts a fresh seed."""
        rank, cuda = self.world.rank, self.model.device.type == "cuda"
        if rank > 0 and saved_world != self.world.world_size:
            torch.manual_seed(rank_seed(self.config.seed, rank))
            return
        own = {
            k: rngs[f"rank_{k}"][rank].clone() if rank else rngs[k]
            for k in ("rng", "cuda_rng")
            if k in rngs
        }
        torch.set_rng_state(own["rng"])
        if cuda and "cuda_rng" in own:
            torch.cuda.set_rng_state(own["cuda_rng"], self.model.device)

    def _note_thread_change(self, saved: int, now: int) -> None:
        """Exact resume needs the thread count the run had: say so when it changed."""
        if saved != now and self.world.is_main:
            self.console.print(
                f"note: resuming with {now} threads where the run used {saved}: a valid "
                "continuation, but not bit-identical to an uninterrupted run (torch's CPU "
                "kernels round differently per thread count; docs/design.md, Training)",
                highlight=False,
            )

    def _trace(self, directory: str, epoch: int, done: int) -> None:
        """Test-only (SESSIONREC_WEIGHT_TRACE=DIR): append the weight digest after a step."""
        line = f"{epoch + 1} {done} {distributed.weight_digest(self.model.net)}\n"
        with open(os.path.join(directory, f"weights-rank{self.world.rank}.txt"), "a") as f:
            f.write(line)

    def _keep_best(self) -> None:
        """Remember the best weights (rank 0): in the run directory's weights file, which a
        crash leaves behind for `--resume`, else in memory."""
        if not self.world.is_main:
            return  # other ranks receive rank 0's best weights at the end
        if self.run_dir is not None:
            write_weights(self.run_dir, self.model.net.state_dict())
        else:
            self.best_weights = copy.deepcopy(self.model.net.state_dict())

    def _restore_best(self) -> None:
        if not self.world.is_main:
            pass  # receives rank 0's weights below
        elif self.best_weights is not None:
            self.model.net.load_state_dict(self.best_weights)
        elif self.run_dir is not None and (self.run_dir / WEIGHTS_FILE).exists():
            self.model.net.load_state_dict(read_weights(self.run_dir))
        if self.world.enabled:
            distributed.broadcast_module(self.model.net)

    @staticmethod
    def _epoch_line(record: dict[str, Any], metric: str) -> str:
        valid = record.get("valid", {})
        shown = f", valid {metric} {valid[metric]:.4f}" if metric in valid else ""
        if metric in record.get("test", {}):  # test_curve: shown, never selected on
            shown += f", test {metric} {record['test'][metric]:.4f}"
        return (
            f"epoch {record['epoch']}: loss {record['loss']:.4f}{shown}, "
            f"{record['seconds']:.1f} s (best epoch {record['best_epoch']})"
        )
