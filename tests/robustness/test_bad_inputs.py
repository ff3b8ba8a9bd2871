"""Every bad-input case: one line on stderr and a non-zero exit from the CLI, the documented
exception from the API, and the working directory exactly as it was (nothing half-written).

`docs/robustness.md` lists the cases and their messages; regenerate it after changing a case
or a message with `SESSIONREC_UPDATE_DOCS=1 pytest tests/robustness/test_bad_inputs.py`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from pathlib import Path

import pytest

from helpers import run_main
from sessionrec.errors import SessionrecError

from .bad_input_corpus import CASES, MARKER, Case, Workspace

DOC = Path(__file__).resolve().parents[2] / "docs" / "robustness.md"
BEGIN, END = "<!-- bad-input table: begin -->", "<!-- bad-input table: end -->"
HEADER = "| case | command | what the user sees | API raises |"
_LINES: dict[str, tuple[str, str, bool]] = {}  # case id -> (command, stderr line, has an API)


def snapshot(root: Path) -> dict[str, tuple[str, ...]]:
    """Every path under `root` with its kind and content hash (symlinks are not followed)."""
    out: dict[str, tuple[str, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = run_main(args, monkeypatch)
    return code, capsys.readouterr().err


def shown(text: str, root: Path) -> str:
    """`text` with the working directory written as $PWD, as in the docs."""
    for prefix in {str(root.resolve()), str(root)}:
        text = text.replace(prefix, "$PWD")
    return text


def run_case(c: Case, tmp_path: Path, templates: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    args, api = c.build(Workspace(tmp_path, templates))
    before = snapshot(tmp_path)

    code, err = run_cli(args, monkeypatch, capsys)
    lines = err.strip().splitlines()
    _LINES[c.id] = (
        "sessionrec " + " ".join(map(shlex.quote, args)),
        shown(" ".join(lines), tmp_path),
        api is not None,
    )
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("sessionrec: error: "), err
    assert re.search(c.match, lines[0]), lines[0]
    assert snapshot(tmp_path) == before, "the CLI changed the working directory"

    if api is None:
        return
    with pytest.raises(SessionrecError) as info:
        api()
    assert type(info.value) is c.error, f"{type(info.value).__name__}: {info.value}"
    if c.same_message:
        assert lines[0] == f"sessionrec: error: {info.value}"
    assert snapshot(tmp_path) == before, "the API changed the working directory"
    assert not (tmp_path / MARKER).exists()


def _param(c: Case) -> object:
    marks = []
    if c.pending:
        marks = [pytest.mark.xfail(strict=True, reason=f"needs the fix proposed for {c.pending}")]
    return pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("c", [_param(c) for c in CASES])
def test_bad_input(c: Case, tmp_path: Path, templates: Path, monkeypatch, capsys) -> None:
    run_case(c, tmp_path, templates, monkeypatch, capsys)


def test_corpus_is_large_and_ids_unique() -> None:
    assert len(CASES) >= 20 and len({c.id for c in CASES}) == len(CASES)


def render_table() -> str:
    rows = []
    group = None
    for c in CASES:
        if c.group != group:
            group = c.group
            rows += ["", f"#### {group}", "", HEADER, "|---|---|---|---|"]
        command, line, has_api = _LINES[c.id]
        command, line = cell(command), cell(line)
        note = f" (pending the fix proposed for `{c.pending}`)" if c.pending else ""
        raises = f"`{c.error.__name__}`" if has_api else "(CLI only)"
        rows.append(f"| `{c.id}`: {c.what} | `` {command} `` | `` {line} ``{note} | {raises} |")
    return "\n".join(rows[1:])


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def test_docs_list_every_case_with_its_message(
    tmp_path_factory: pytest.TempPathFactory, templates: Path, monkeypatch, capsys
) -> None:
    for c in CASES:
        if c.id not in _LINES:  # not run yet (e.g. `-k docs`): run it to get its message
            with monkeypatch.context() as m:
                try:
                    run_case(c, tmp_path_factory.mktemp(c.id), templates, m, capsys)
                except (Exception, pytest.fail.Exception):
                    if not c.pending:
                        raise
    table = render_table()
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    current = text[start:end].strip("\n")
    if os.environ.get("SESSIONREC_UPDATE_DOCS"):
        DOC.write_text(text[:start] + "\n" + table + "\n" + text[end:])
        return
    assert current == table, (
        "docs/robustness.md is out of date: run "
        "SESSIONREC_UPDATE_DOCS=1 pytest tests/robustness/test_bad_inputs.py"
    )
