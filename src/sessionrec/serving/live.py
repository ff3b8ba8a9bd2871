"""Sessions that update a served model live, kept in an append-only log in the run directory.

`POST /sessions` and `sessionrec update RUN_DIR --events FILE` append completed sessions (in
the dataset's original item ids) to `RUN_DIR/sessions.jsonl`, one JSON line per call, written
and flushed before anything answers. Every serving process follows the log: before each
forward pass it checks the file's size and folds the lines it has not seen into its model
(`Recommender.add_sessions`: popularity counts, kNN session pools, ItemKNN's similarities).
So a restart replays the log and loses nothing, every worker of a multi-process service sees
every ingested session before its next answer, and `update` reaches a running service. Only
models with `learns_online` take sessions; the others answer with one clear error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sessionrec.data.sessions import Sessions
from sessionrec.errors import ConfigError, RunError
from sessionrec.models.base import Recommender
from sessionrec.rundir import SESSIONS_LOG_FILE
from sessionrec.serving.vocab import ItemId, ItemVocabulary


class SessionLog:
    """The run directory's log of ingested sessions, followed from a byte offset."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / SESSIONS_LOG_FILE
        self.offset = 0  # bytes of the log already folded into the model

    def append(self, sessions: list[list[ItemId]]) -> None:
        """One line for these sessions, flushed to disk (O_APPEND: whole lines, any writers)."""
        line = (json.dumps({"sessions": sessions}, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def unread(self) -> list[list[ItemId]]:
        """The sessions of every complete line past the offset (the offset moves past them)."""
        try:
            if self.path.stat().st_size <= self.offset:
                return []
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next call
        sessions: list[list[ItemId]] = []
        for line in data[:end].splitlines():
            try:
                sessions.extend(check_sessions(json.loads(line)["sessions"]))
            except (ValueError, KeyError, TypeError, ConfigError):
                raise RunError(f"{self.path}: a corrupted line after byte {self.offset}") from None
        self.offset += end
        return sessions


def to_sessions(
    sessions: Sequence[Sequence[ItemId]], vocab: ItemVocabulary
) -> tuple[Sessions, list[ItemId]]:
    """Internal-id sessions (unknown items dropped) and the unknown ids, in order."""
    known, unknown = [], []
    for session in sessions:
        ids, missing = vocab.to_internal(session)
        known.append(ids)
        unknown.extend(missing)
    return Sessions.from_lists(known), unknown


def check_sessions(sessions: Any) -> list[list[ItemId]]:
    """A list of non-empty lists of item ids, or one clear error."""
    if not isinstance(sessions, list) or not sessions:
        raise ConfigError("sessions must be a non-empty list of sessions (lists of item ids)")
    for i, session in enumerate(sessions):
        if not isinstance(session, list) or not session:
            raise ConfigError(f"sessions[{i}] must be a non-empty list of item ids")
        if any(isinstance(x, bool) or not isinstance(x, int | str) for x in session):
            raise ConfigError(f"sessions[{i}]: item ids are integers or strings")
    return sessions


def fold(model: Recommender, log: SessionLog, vocab: ItemVocabulary) -> int:
    """Fold the log's unread sessions into `model`; how many sessions were folded."""
    sessions = log.unread()
    if not sessions:
        return 0
    internal, _ = to_sessions(sessions, vocab)
    keep = np.flatnonzero(internal.lengths > 0)
    if len(keep):
        model.add_sessions(internal.select(keep))
    return len(sessions)
