"""Own click logs in (`prepare --format events|recbole`), exact splits out (`datasets export`)."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from helpers import run_cli
from sessionrec.data.dataset import build_dataset
from sessionrec.data.export import export, whole_sessions
from sessionrec.data.prepare import prepare
from sessionrec.data.prepared import read_prepared
from sessionrec.data.sessions import Sessions
from sessionrec.data.sources import load_dataset
from sessionrec.errors import DataError

DAY = 86_400
T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC
# (session, item, seconds after T0): two training days, then a test day. "s2" is listed out
# of time order (its clicks are ordered by time), "s3" has two clicks at the same second
# (file order decides), "x" appears once only in test (dropped: not a training item).
EVENTS = [
    ("s1", "apple", 0),
    ("s1", "pear", 10),
    ("s2", "plum", 3_010),
    ("s2", "apple", 3_000),
    ("s3", "pear", DAY),
    ("s3", "plum", DAY),
    ("s3", "apple", DAY + 5),
    ("t1", "plum", 2 * DAY + 100),
    ("t1", "x", 2 * DAY + 110),
    ("t1", "pear", 2 * DAY + 120),
    ("t1", "apple", 2 * DAY + 130),
]


def write_log(
    path: Path, times: list[str], sep: str = "\t", header=("SessionId", "ItemId", "Time")
):
    rows = [sep.join(header)] + [
        f"{s}{sep}{i}{sep}{t}" for (s, i, _), t in zip(EVENTS, times, strict=True)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def seconds() -> list[str]:
    return [str(T0 + dt) for _, _, dt in EVENTS]


def iso() -> list[str]:  # the same instants, some with an offset
    out = []
    for k, (_, _, dt) in enumerate(EVENTS):
        t = np.datetime64(T0 + dt, "s")
        if k % 3 == 1:  # +02:00: two hours later on the clock, the same instant
            out.append(str(t + np.timedelta64(2, "h")) + "+02:00")
        else:
            out.append(str(t) + "Z")
    return out


def prepared(path: Path, out: Path, **kw):
    stats = prepare("events", path, out, min_item_support=1, **kw)
    train, test, ids, _ = read_prepared(out)
    named = np.array(["", *ids], dtype=object)
    return (
        [list(named[s]) for s in train.to_lists()],
        [list(named[s]) for s in test.to_lists()],
        stats,
    )


def test_a_hand_made_log_gives_the_hand_computed_split(tmp_path):
    train, test, stats = prepared(
        write_log(tmp_path / "log.tsv", seconds()), tmp_path / "o", test_days=1
    )
    assert train == [["apple", "pear"], ["apple", "plum"], ["pear", "plum", "apple"]]
    assert test == [["plum", "pear", "apple"]]  # "x" is no training item
    assert stats["rules"]["test"] == "the last 1 day(s)"
    assert stats["reading"]["time_format"] == "seconds"
    assert (stats["train_examples"], stats["test_examples"], stats["items"]) == (4, 2, 3)


@pytest.mark.parametrize("form", ["milliseconds", "iso", "csv", "parquet"])
def test_every_way_of_writing_the_log_gives_the_same_dataset(tmp_path, form):
    expected = prepared(write_log(tmp_path / "s.tsv", seconds()), tmp_path / "a", test_days=1)
    if form == "milliseconds":
        path = write_log(tmp_path / "ms.tsv", [f"{t}000" for t in seconds()])
    elif form == "iso":
        path = write_log(tmp_path / "iso.tsv", iso())
    elif form == "csv":
        path = write_log(tmp_path / "log.csv", iso(), sep=",")
    else:
        path = tmp_path / "log.parquet"
        pl.DataFrame(
            {
                "SessionId": [s for s, _, _ in EVENTS],
                "ItemId": [i for _, i, _ in EVENTS],
                "Time": pl.Series([(T0 + dt) * 1000 for *_, dt in EVENTS]).cast(
                    pl.Datetime("ms", "UTC")
                ),
            }
        ).write_parquet(path)
    got = prepared(path, tmp_path / "b", test_days=1)
    assert got[:2] == expected[:2]


def test_latest_fraction_of_sessions_and_a_separate_test_file(tmp_path):
    log = write_log(tmp_path / "log.tsv", seconds())
    train, test, stats = prepared(log, tmp_path / "f", test_fraction=0.5)  # 2 of 4 sessions
    assert train == [["apple", "pear"], ["apple", "plum"]]
    assert test == [["pear", "plum", "apple"], ["plum", "pear", "apple"]]
    assert stats["rules"]["test_fraction"] == 0.5
    head = write_log(tmp_path / "train.tsv", seconds())
    lines = head.read_text().splitlines()
    head.write_text("\n".join(lines[:5]) + "\n")  # s1, s2
    (tmp_path / "test.tsv").write_text("\n".join([lines[0], *lines[5:8]]) + "\n")  # s3
    train, test, _ = prepared(head, tmp_path / "g", test_input=tmp_path / "test.tsv")
    assert (train, test) == ([["apple", "pear"], ["apple", "plum"]], [["pear", "plum", "apple"]])


def test_recbole_atomic_files_are_read_by_their_typed_header(tmp_path):
    path = write_log(
        tmp_path / "shop.inter",
        seconds(),
        header=("session_id:token", "item_id:token", "timestamp:float"),
    )
    stats = prepare("recbole", path, tmp_path / "r", min_item_support=1, test_days=1)
    assert (stats["train_sessions"], stats["test_sessions"]) == (3, 1)


@pytest.mark.parametrize(
    "lines,message",
    [
        (["session,item,ts", "1,a,5"], "missing column 'SessionId' (found: session, item, ts"),
        (["SessionId,ItemId,ItemId", "1,a,5"], "column 'ItemId' appears twice in the header"),
        (
            ["SessionId,ItemId,Time", "1,a,5", "1,b,noon"],
            "column 'Time', line 3: expected a number",
        ),
        (["SessionId,ItemId,Time", "1,a,2024-01-01", "1,b,soon"], "line 3: expected an ISO-8601"),
        (["SessionId,ItemId,Time", "1,,5"], "column 'ItemId', line 2: expected a value"),
        (["SessionId,ItemId,Time"], "has no data rows"),
    ],
)
def test_bad_logs_get_one_line_naming_file_and_field_and_nothing_is_written(
    tmp_path, lines, message
):
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        prepare("events", path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A prepared dataset of 400 sessions, long enough to have validation and test."""
    rng = np.random.default_rng(0)
    rows, t = ["SessionId\tItemId\tTime"], T0
    for s in range(400):
        t += int(rng.integers(100, 2000))
        for k in range(int(rng.integers(2, 7))):
            rows.append(f"u{s}\tp{int(rng.zipf(1.5)) % 60}\t{t + 7 * k}")
    root = tmp_path_factory.mktemp("own")
    (root / "log.tsv").write_text("\n".join(rows) + "\n")
    prepare("events", root / "log.tsv", root / "ds", min_item_support=1, test_fraction=0.2)
    return root / "ds"


EVENT_FILES = [
    ("session-rec", "train.tsv", "test.tsv"),
    ("parquet", "train.parquet", "test.parquet"),
]


@pytest.mark.parametrize("to,train,test", EVENT_FILES)
def test_exported_events_prepare_back_to_the_same_examples(own, tmp_path, to, train, test):
    data = load_dataset(own, valid_fraction=0.1)
    export(data, to, tmp_path / "x")
    again = prepare(
        "events", tmp_path / "x" / train, tmp_path / "back", min_item_support=1,
        test_input=tmp_path / "x" / test,
    )  # fmt: skip
    assert again["test_examples"] == len(data.test)
    back = load_dataset(tmp_path / "back", valid_fraction=0.1)
    assert back.item_ids == data.item_ids
    for split in ("train", "valid", "test"):
        a, b = getattr(data, split), getattr(back, split)
        assert np.array_equal(a.target, b.target), split
        assert all(np.array_equal(a.sequence(i), b.sequence(i)) for i in range(len(a))), split


def test_recbole_export_writes_the_examples_of_each_split(own, tmp_path):
    data = load_dataset(own, valid_fraction=0.1)
    counts = export(data, "recbole", tmp_path / "shop")
    assert counts == {"train": len(data.train), "valid": len(data.valid),
                      "test": len(data.test), "items": data.num_items}  # fmt: skip
    rows = (tmp_path / "shop" / "shop.valid.inter").read_text().splitlines()
    assert rows[0] == "session_id:token\titem_id_list:token_seq\titem_id:token"
    ids = ["", *data.item_ids]
    first = data.valid.sequence(0)
    assert rows[1] == f"0\t{' '.join(ids[i] for i in first)}\t{ids[data.valid.target[0]]}"


def test_test_examples_that_are_not_whole_sessions_cannot_become_events():
    whole = Sessions.from_lists([[1, 2, 3], [4, 5]]).prefixes()
    assert whole_sessions(whole).to_lists() == [[1, 2, 3], [4, 5]]
    lone = Sessions.from_lists([[1, 2], [3]]).as_examples([3, 4])  # ([1,2],3) has no ([1],2)
    train = Sessions.from_lists([[1, 2, 3, 4]])
    with pytest.raises(DataError, match="export --to recbole keeps the examples"):
        export(build_dataset("hand", train, lone, valid_fraction=0.0), "session-rec", Path("/x"))


def test_cli_prepare_and_export(own, tmp_path):
    cli = run_cli
    done = cli("datasets", "export", own, "--to", "session-rec", "--output", tmp_path / "x")
    assert done.returncode == 0 and "test_events" in done.stdout, done.stderr
    log = tmp_path / "x" / "train.tsv"
    done = cli("datasets", "prepare", "--format", "events", "--input", log,
               "--output", tmp_path / "p", "--time-column", "When")  # fmt: skip
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "missing column 'When'" in done.stderr and not (tmp_path / "p").exists()
    done = cli("datasets", "prepare", "--format", "events", "--input", log,
               "--output", tmp_path / "p", "--test-fraction", "0.2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    stats = json.loads((tmp_path / "p" / "stats.json").read_text())
    assert stats["rules"]["test"] == "the latest 0.2 of sessions by session time"


def test_unseen_test_items_kept_and_short_test_inputs_left_out(tmp_path):
    log = write_log(tmp_path / "log.tsv", seconds())
    train, test, stats = prepared(
        log, tmp_path / "u", test_days=1, keep_unseen_test_items=True, min_test_prefix=2
    )
    assert test == [["plum", "x", "pear", "apple"]]  # "x" kept, numbered after training items
    assert read_prepared(tmp_path / "u")[2] == ["apple", "pear", "plum", "x"]
    data = load_dataset(tmp_path / "u", valid_fraction=0.0)
    names = ["", "apple", "pear", "plum", "x"]
    got = [([names[i] for i in data.test.sequence(k)], names[data.test.target[k]])
           for k in range(len(data.test))]  # fmt: skip
    assert got == [(["plum", "x", "pear"], "apple"), (["plum", "x"], "pear")]  # no 1-click input
    assert stats["test_examples"] == 2 and stats["rules"]["min_test_prefix"] == 2
    again = export(data, "session-rec", tmp_path / "x")["prepare"]
    assert again.endswith("--keep-unseen-test-items --min-test-prefix 2 --output DIR")
    assert (tmp_path / "x" / "prepare-again.txt").read_text().startswith("sessionrec datasets")
