"""Progress for the long steps (evaluation, graph building, preprocessing, reproduce rows).

Off unless a caller turns it on with `shown(True)` (the CLI does, unless `--no-progress`), and
never drawn when stderr is not a terminal, so logs and tests see nothing. Library code just
wraps its step in `bar(...)` or `status(...)`; both cost nothing when progress is off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_SHOWN: ContextVar[bool] = ContextVar("sessionrec_progress", default=False)
_ACTIVE: ContextVar[bool] = ContextVar("sessionrec_progress_active", default=False)


@contextmanager
def shown(enabled: bool = True) -> Iterator[None]:
    """Show (or hide) progress for the steps run inside this block."""
    token = _SHOWN.set(enabled)
    try:
        yield
    finally:
        _SHOWN.reset(token)


def _console() -> Console | None:
    """The console to draw on, or None: progress off, not a terminal, or a bar already shown
    (one live display at a time: a step inside a shown step stays quiet)."""
    if not _SHOWN.get() or _ACTIVE.get():
        return None
    console = Console(stderr=True)
    return console if console.is_terminal else None


@contextmanager
def bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A bar with count, elapsed time and ETA; yields `advance(n=1)`."""
    console = _console()
    if console is None:
        yield lambda n=1: None
        return
    columns = (
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    token = _ACTIVE.set(True)
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(description, total=total)
            yield lambda n=1: progress.advance(task, n)
    finally:
        _ACTIVE.reset(token)


@contextmanager
def status(description: str) -> Iterator[None]:
    """A spinner for a step that has no count (building a graph, filtering a log)."""
    console = _console()
    if console is None:
        yield
        return
    token = _ACTIVE.set(True)
    try:
        with console.status(description):
            yield
    finally:
        _ACTIVE.reset(token)
