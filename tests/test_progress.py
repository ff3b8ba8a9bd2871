"""Progress on long steps: drawn on a terminal when shown, one at a time, silent otherwise."""

import io

from rich.console import Console

from sessionrec import progress
from sessionrec.evaluation import evaluate
from sessionrec.models import create


def terminal(monkeypatch) -> io.StringIO:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    monkeypatch.setattr(progress, "Console", lambda **_: console)
    return buffer


def test_evaluation_draws_a_bar_only_when_shown(tiny, monkeypatch):
    buffer = terminal(monkeypatch)
    model = create("pop", tiny.num_items).fit(tiny)
    evaluate(model, tiny.test, batch_size=64)
    assert buffer.getvalue() == ""  # off unless a caller shows it
    with progress.shown():
        evaluate(model, tiny.test, batch_size=64)
    assert f"ranking all items for {len(tiny.test):,} cases" in buffer.getvalue()


def test_a_step_inside_a_shown_step_stays_quiet(monkeypatch):
    buffer = terminal(monkeypatch)
    with progress.shown(), progress.bar("rows", 2) as advance:
        with progress.status("building a graph"), progress.bar("inner", 3) as inner:
            inner(1)
        advance(2)
    text = buffer.getvalue()
    assert "rows" in text and "building a graph" not in text and "inner" not in text


def test_not_a_terminal_draws_nothing(monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setattr(progress, "Console", lambda **_: Console(file=buffer))
    with progress.shown(), progress.bar("rows", 1) as advance:
        advance(1)
    assert buffer.getvalue() == ""
