"""The compute budget of a reproduction, and the label every table header carries.

A run is the full protocol only with the default epochs (early stopping decides), no time
limit, all training sessions and no `--set` that changes a result; anything else is REDUCED.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sessionrec.errors import ConfigError
from sessionrec.training.config import TrainConfig

PROTOCOLS = ("full", "paper")

# Settings that change how a run executes but not its result (left out of the cache key).
# `max_minutes` too: a run that ended before its budget is the same run under any budget, and
# one its budget cut is resumed when asked for again with more time (runner.Runner.finished).
EXECUTION_ONLY = (
    "num_threads",
    "device",
    "eval_batch_size",
    "checkpoint_seconds",
    "test_curve",
    "log_every",
    "max_minutes",
)


@dataclass(frozen=True)
class Budget:
    """Epochs, wall-clock minutes per run, share of training sessions, seeds, `--set` values."""

    epochs: int = TrainConfig.epochs
    max_minutes: float | None = None
    train_fraction: float = 1.0
    seeds: int = 1
    sets: Mapping[str, str] = field(default_factory=dict)
    # full: test the validation-selected run; paper: then refit on every training example
    # for the selected epochs and test that (training.run.train_paper_protocol)
    protocol: str = "full"

    def check(self) -> None:
        if self.epochs < 1 or self.seeds < 1:
            raise ConfigError("--epochs and --seeds must be at least 1")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(f"--max-minutes must be > 0, got {self.max_minutes}")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"--train-fraction must be in (0, 1], got {self.train_fraction}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(
                f"--protocol must be one of {', '.join(PROTOCOLS)}, got '{self.protocol}'"
            )

    def result_sets(self) -> dict[str, str]:
        """The `--set` values that can change a result."""
        return {k: v for k, v in self.sets.items() if k not in EXECUTION_ONLY}

    @property
    def full(self) -> bool:
        return (
            self.epochs >= TrainConfig.epochs
            and self.max_minutes is None
            and self.train_fraction == 1.0
            and not self.result_sets()
        )

    def label(self) -> str:
        """One line for the table header: FULL PROTOCOL or REDUCED BUDGET and its terms."""
        parts = [
            f"up to {self.epochs} epoch{'s' if self.epochs != 1 else ''} "
            f"(early stopping on validation, patience {TrainConfig.patience})",
            f"≤ {self.max_minutes:g} min training per run" if self.max_minutes else "no time limit",
            "all training sessions"
            if self.train_fraction == 1.0
            else f"most recent {100 * self.train_fraction:g}% of training sessions",
            f"{self.seeds} seed{'s' if self.seeds != 1 else ''}"
            + (" (mean ± std)" if self.seeds > 1 else ""),
        ]
        if self.protocol == "paper":
            parts.append("then a refit on every training example for the selected epochs")
        sets = self.result_sets()
        if sets:
            parts.append("--set " + " ".join(f"{k}={v}" for k, v in sets.items()))
        kind = f"{self.protocol} protocol" if self.full else "REDUCED BUDGET"
        kind += "" if self.full else " (not the paper's protocol)"
        return f"Budget: {kind}: " + "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "max_minutes": self.max_minutes,
            "train_fraction": self.train_fraction,
            "seeds": self.seeds,
            "sets": dict(self.sets),
            "protocol": self.protocol,
            "full_protocol": self.full,
        }
