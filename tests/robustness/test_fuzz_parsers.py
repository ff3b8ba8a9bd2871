"""Property tests of the raw-log parsers and the dataset builder on generated input.

Well-formed and mangled click logs go through `prepare`; random session lists and malformed
structures go through `load_dataset`. The only failure allowed is the documented one (a
one-line `DataError` naming the file, with nothing written); a success must satisfy the
invariants of the format. `SESSIONREC_FUZZ_EXAMPLES` raises the example counts for a long run.
"""

from __future__ import annotations

import os
import random
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from helpers import write_pickles
from sessionrec.data.prepare import prepare
from sessionrec.data.prepared import read_prepared
from sessionrec.data.sessions import Sessions
from sessionrec.data.sources import load_dataset
from sessionrec.errors import DataError

EXAMPLES = int(os.environ.get("SESSIONREC_FUZZ_EXAMPLES", "0"))


def fuzz(examples: int) -> settings:
    """Modest, reproducible example counts in CI; `SESSIONREC_FUZZ_EXAMPLES` for a long run."""
    return settings(
        max_examples=EXAMPLES or examples,
        deadline=None,
        derandomize=not EXAMPLES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


T0 = datetime(2016, 5, 1, tzinfo=timezone.utc)

# A session: (day, items); it becomes one session (Diginetica, YooChoose) or visitor
# (RetailRocket) with a click a minute from 01:00. Few items, so support filters keep some.
sessions_of_clicks = st.lists(
    st.tuples(st.integers(0, 12), st.lists(st.integers(1, 6), min_size=1, max_size=5)),
    min_size=1,
    max_size=12,
)


def render(fmt: str, sessions: list[tuple[int, list[int]]], shuffle: int | None) -> str:
    """The sessions as the raw file of `fmt`; lines shuffled with seed `shuffle` if given."""
    rows = [
        (s, T0 + timedelta(days=day, hours=1, minutes=j), item)
        for s, (day, items) in enumerate(sessions, 1)
        for j, item in enumerate(items)
    ]
    if shuffle is not None:
        random.Random(shuffle).shuffle(rows)
    if fmt == "diginetica":
        header = ["sessionId;userId;itemId;timeframe;eventdate"]
        lines = [f"{s};NA;{i};{t.minute * 1000};{t:%Y-%m-%d}" for s, t, i in rows]
    elif fmt == "yoochoose":
        header = []
        lines = [f"{s},{t:%Y-%m-%dT%H:%M:%S}.{s * 7 % 1000:03d}Z,{i},0" for s, t, i in rows]
    else:
        header = ["timestamp,visitorid,event,itemid,transactionid"]
        lines = [
            f"{int(t.timestamp() * 1000)},{s},{'view' if (s + i) % 7 else 'addtocart'},{i},"
            for s, t, i in rows
        ]
    return "\n".join(header + lines) + "\n"


formats = st.sampled_from(["diginetica", "yoochoose", "retailrocket"])
shuffles = st.none() | st.integers(0, 2**16)


options = st.fixed_dictionaries(
    {
        "min_item_support": st.integers(1, 3),
        "test_days": st.integers(1, 4),
        "until_stable": st.booleans(),
        "fraction": st.sampled_from([None, 0.5, 1.0]),
    }
)


def check_prepare(fmt: str, raw: bytes, opts: dict[str, Any]) -> None:
    """`prepare` succeeds with every invariant or fails with the documented error only."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "raw.txt", Path(tmp) / "out"
        src.write_bytes(raw)
        try:
            stats = prepare(fmt, src, out, **opts)
        except DataError as e:
            msg = str(e)
            event(f"refused: {msg[len(str(src)) + 2 :][:30]}")
            assert msg.startswith(str(src)) and "\n" not in msg, msg
            assert sorted(p.name for p in Path(tmp).iterdir()) == ["raw.txt"], "left files"
            return
        event("prepared")
        train, test, item_ids, saved = read_prepared(out)
        n = len(item_ids)
        for s in (train, test):
            assert (s.lengths >= 2).all()
        assert set(train.items.tolist()) == set(range(1, n + 1))  # ids 1..N, all in training
        assert set(test.items.tolist()) <= set(train.items.tolist())  # test items are trained
        assert stats["train_examples"] == int(train.lengths.sum()) - len(train)
        assert stats["test_examples"] == int(test.lengths.sum()) - len(test)
        assert saved["items"] == n and stats["raw_clicks"] <= len(raw.splitlines())
        data = load_dataset(out)
        assert len(data.train) + len(data.valid) == stats["train_examples"]
        assert len(data.test) == stats["test_examples"]


@fuzz(100)
@given(formats, sessions_of_clicks, shuffles, options)
def test_prepare_well_formed_logs(fmt: str, sessions: list, shuffle: Any, opts: dict) -> None:
    check_prepare(fmt, render(fmt, sessions, shuffle).encode(), opts)


mutation = st.tuples(
    st.sampled_from(["insert", "delete", "replace", "truncate", "drop_line"]),
    st.floats(0, 1),
    st.sampled_from(list(b',;\n\r"x- 9\x00\xff') + [0xC3]),
)


def mangle(raw: bytes, mutations: list[tuple[str, float, int]]) -> bytes:
    data = bytearray(raw)
    for kind, where, byte in mutations:
        i = int(where * len(data))
        if kind == "insert":
            data[i:i] = bytes([byte])
        elif kind == "delete" and data:
            del data[min(i, len(data) - 1)]
        elif kind == "replace" and data:
            data[min(i, len(data) - 1)] = byte
        elif kind == "truncate":
            del data[i:]
        elif kind == "drop_line":
            lines = bytes(data).split(b"\n")
            del lines[min(int(where * len(lines)), len(lines) - 1)]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


@fuzz(150)
@given(formats, sessions_of_clicks, st.lists(mutation, min_size=1, max_size=4), options)
def test_prepare_mangled_logs(fmt: str, sessions: list, mutations: list, opts: dict) -> None:
    check_prepare(fmt, mangle(render(fmt, sessions, None).encode(), mutations), opts)


# --- the dataset builder -------------------------------------------------------------------------
item = st.one_of(st.integers(1, 12), st.integers(-2, 0), st.sampled_from([2**40, 2**64]))
sessions = st.lists(st.lists(item, max_size=6), max_size=8)
test_sets = st.lists(st.tuples(st.lists(item, max_size=4), item), max_size=5)


def reference_prefixes(seqs: list[list[int]]) -> list[tuple[list[int], int]]:
    """([a, b], c) then ([a], b) for session [a, b, c], sessions in order."""
    return [(s[:j], s[j]) for s in seqs for j in range(len(s) - 1, 0, -1)]


def check_dataset(train_obj: Any, test_obj: Any, valid_fraction: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = write_pickles(Path(tmp) / "data", train_obj, test_obj)
        try:
            data = load_dataset(d, valid_fraction=valid_fraction)
        except DataError as e:  # including UnsafeFileError
            assert "\n" not in str(e) and str(e).startswith((str(d), f"{d.name}:")), str(e)
            return
    seqs, labels = test_obj
    expected = reference_prefixes(train_obj)
    examples = [data.train, data.valid]
    got = [(ex.sequence(i).tolist(), int(ex.target[i])) for ex in examples for i in range(len(ex))]
    assert got == expected
    assert len(data.valid) == round(len(expected) * valid_fraction)
    ids = [x for s in train_obj for x in s] + [x for s in seqs for x in s] + list(labels)
    assert min(ids) >= 1 and data.num_items == max(ids)
    assert [data.test.sequence(i).tolist() for i in range(len(data.test))] == seqs
    assert data.test.target.tolist() == labels
    assert data.stats()["train_sessions"] == len(train_obj)


@fuzz(150)
@given(sessions, test_sets, st.sampled_from([0.0, 0.1, 0.5]))
def test_dataset_builder_on_random_sessions(train: list, test: list, fraction: float) -> None:
    check_dataset(train, ([s for s, _ in test], [t for _, t in test]), fraction)


plain = st.recursive(
    st.integers(-3, 12) | st.booleans() | st.floats(allow_nan=False) | st.none() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner),
    max_leaves=20,
)


@fuzz(150)
@given(plain, plain)
def test_dataset_builder_on_malformed_structures(train: Any, test: Any) -> None:
    """Arbitrary nested data where sessions belong: a `DataError`, or a consistent dataset."""
    with tempfile.TemporaryDirectory() as tmp:
        d = write_pickles(Path(tmp) / "data", train, test)
        try:
            data = load_dataset(d, valid_fraction=0.0)
        except DataError as e:
            assert "\n" not in str(e)
            return
    assert len(data.train) == sum(max(len(s) - 1, 0) for s in train)


@fuzz(100)
@given(st.lists(st.lists(st.integers(1, 50), max_size=7), max_size=10))
def test_prefixes_match_the_reference(seqs: list[list[int]]) -> None:
    ex = Sessions.from_lists(seqs).prefixes()
    assert [(ex.sequence(i).tolist(), int(ex.target[i])) for i in range(len(ex))] == (
        reference_prefixes(seqs)
    )
    padded, lengths = ex.padded(np.arange(len(ex)), max_len=3)
    for i in range(len(ex)):
        assert padded[i, : lengths[i]].tolist() == ex.sequence(i).tolist()[-3:]
