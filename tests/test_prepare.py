"""Raw click-log preprocessing (`sessionrec.data.prepare`) and the prepared-dataset format."""

from __future__ import annotations

import calendar
import csv
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from sessionrec.data.prepare import parse_fraction, prepare
from sessionrec.data.prepared import is_prepared_dir, read_prepared, write_prepared
from sessionrec.data.sessions import Sessions
from sessionrec.errors import ConfigError, DataError

RAW_SAMPLES = Path(__file__).resolve().parents[1].parent / "shared/datasets/raw_samples"
DIGINETICA_SAMPLE = RAW_SAMPLES / "diginetica_sample_train-item-views.csv"
YOOCHOOSE_SAMPLE = RAW_SAMPLES / "yoochoose_sample_clicks.dat"

T0 = datetime(2014, 4, 1, 10, 0, 0, tzinfo=timezone.utc)
# Short names for the hand-made fixtures' item ids.
A, B, C, X, Z = 100, 200, 300, 400, 500


# ----------------------------------------------------------------------------- fixture writers


def yoo_ts(days: float = 0, seconds: float = 0) -> str:
    """A YooChoose timestamp `days` days and `seconds` seconds after T0."""
    t = T0 + timedelta(days=days, seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def write_yoochoose(path: Path, sessions: list[tuple[int, float, list[int]]]) -> Path:
    """Sessions (session id, day, items); clicks one minute apart from that day's T0 time."""
    lines = [
        f"{sid},{yoo_ts(day, 60 * k)},{item},0"
        for sid, day, items in sessions
        for k, item in enumerate(items)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_diginetica(path: Path, rows: list[tuple[int, int, int, str]]) -> Path:
    """Rows (sessionId, itemId, timeframe, eventdate) under the original camelCase header."""
    lines = ["sessionId;userId;itemId;timeframe;eventdate"]
    lines += [f"{s};NA;{i};{tf};{d}" for s, i, tf, d in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(tmp_path: Path, fmt: str, raw: Path, **kw) -> tuple[list, list, list[str], dict]:
    """prepare() into a fresh directory, then read it back as plain lists."""
    out = tmp_path / "out"
    stats = prepare(fmt, raw, out, **kw)
    train, test, item_ids, stored = read_prepared(out)
    assert stored == json.loads(json.dumps(stats))
    return train.to_lists(), test.to_lists(), item_ids, stats


def step(stats: dict, name: str) -> dict:
    return next(s for s in stats["steps"] if s["step"] == name)


# ----------------------------------------------------------------------------- each rule


def test_length_one_sessions_dropped(tmp_path):
    raw = write_yoochoose(tmp_path / "c.dat", [(1, 0, [10, 11]), (2, 0, [12]), (3, 2, [10, 11])])
    train, test, ids, stats = run(tmp_path, "yoochoose", raw, min_item_support=1)
    assert (train, test, ids) == ([[1, 2]], [[1, 2]], ["10", "11"])
    assert step(stats, "raw") == {"step": "raw", "clicks": 5, "sessions": 3, "items": 3}
    assert step(stats, "drop_sessions_shorter_than_2")["sessions"] == 2


SUPPORT_FIXTURE = [
    (1, 0, [A, B]),
    (2, 0.1, [A, B]),
    (3, 0.2, [C, X]),  # X has support 1 -> [C] -> dropped
    (4, 0.3, [C, A]),  # then C has support 1 -> [A] -> dropped (second pass)
    (5, 0.4, [Z]),  # length 1
    (6, 2, [A, B]),  # test (last day)
]


def test_support_filter_repeats_until_stable(tmp_path):
    raw = write_yoochoose(tmp_path / "c.dat", SUPPORT_FIXTURE)
    train, test, ids, stats = run(tmp_path, "yoochoose", raw, min_item_support=2)
    assert (train, test, ids) == ([[1, 2], [1, 2]], [[1, 2]], [str(A), str(B)])
    assert stats["filter_passes"] == 3  # X goes, then C goes, then nothing changes
    assert step(stats, "drop_items_support_below_2_pass_1")["sessions"] == 4
    assert step(stats, "drop_items_support_below_2_pass_2")["sessions"] == 3
    assert stats["rules"]["repeat_filters_until_stable"] is True


def test_support_filter_single_pass_like_srgnn(tmp_path):
    raw = write_yoochoose(tmp_path / "c.dat", SUPPORT_FIXTURE)
    train, test, ids, stats = run(
        tmp_path, "yoochoose", raw, min_item_support=2, until_stable=False
    )
    # C was counted twice before X's removal shortened session 3, so session 4 survives.
    assert (train, test, ids) == ([[1, 2], [1, 2], [3, 1]], [[1, 2]], [str(A), str(B), str(C)])
    assert stats["filter_passes"] == 1


def test_default_support_five(tmp_path):
    # Item 1 has 5 clicks, item 2 has 5, item 3 only 4: item 3 goes with the default threshold.
    sessions = [(s, 0.01 * s, [1, 2, 3]) for s in range(4)] + [(9, 3, [1, 2])]
    raw = write_yoochoose(tmp_path / "c.dat", sessions)
    train, test, ids, stats = run(tmp_path, "yoochoose", raw)
    assert (train, test, ids) == ([[1, 2]] * 4, [[1, 2]], ["1", "2"])
    assert stats["rules"]["min_item_support"] == 5


def test_split_by_session_end_time_last_days(tmp_path):
    # Max session end = day 3 (+1 min); split = day 2 (+1 min) with test_days=1.
    lines = [
        f"1,{yoo_ts(0)},1,0",
        f"1,{yoo_ts(0, 60)},2,0",  # ends day 0 -> train
        f"2,{yoo_ts(2, -3600)},3,0",
        f"2,{yoo_ts(2, 3600)},1,0",  # starts before the split, ends after -> test
        f"3,{yoo_ts(2, -60)},1,0",
        f"3,{yoo_ts(2, 60.5)},3,0",  # ends at the split (ms truncated like SR-GNN) -> dropped
        f"4,{yoo_ts(2, -60)},2,0",
        f"4,{yoo_ts(2, 59)},3,0",  # ends one second before the split -> train
        f"5,{yoo_ts(3)},2,0",
        f"5,{yoo_ts(3, 60)},1,0",  # the last session -> test
    ]
    raw = tmp_path / "c.dat"
    raw.write_text("\n".join(lines) + "\n")
    train, test, ids, stats = run(tmp_path, "yoochoose", raw, min_item_support=1)
    assert (train, test, ids) == ([[1, 2], [2, 3]], [[3, 1], [2, 1]], ["1", "2", "3"])
    assert stats["sessions_at_split_dropped"] == 1
    assert stats["rules"]["test_days"] == 1  # YooChoose default
    assert stats["split_time"] == (T0 + timedelta(days=2, seconds=60)).strftime("%Y-%m-%d %H:%M:%S")


def test_diginetica_timeframe_order_and_seven_day_split(tmp_path):
    raw = write_diginetica(
        tmp_path / "v.csv",
        [
            (1, 10, 300, "2016-05-01"),
            (1, 20, 100, "2016-05-01"),
            (1, 30, 200, "2016-05-01"),
            (1, 40, 100, "2016-05-01"),  # ties on timeframe keep file order
            (2, 10, 1, "2016-05-02"),  # exactly max - 7 days: dropped (SR-GNN's strict split)
            (2, 20, 2, "2016-05-02"),
            (3, 20, 9, "2016-05-09"),
            (3, 10, 5, "2016-05-09"),
            (4, 30, 5, "2016-05-03"),
            (4, 40, 7, "2016-05-03"),
            (5, 10, 1, "2016-05-03"),  # session time = date on its last line (SR-GNN) = 05-02:
            (5, 20, 2, "2016-05-02"),  # dropped at the split too
        ],
    )
    train, test, ids, stats = run(tmp_path, "diginetica", raw, min_item_support=1)
    assert ids == ["20", "40", "30", "10"]
    assert train == [[1, 2, 3, 4]]
    assert test == [[3, 2], [4, 1]]  # by date: session 4 (05-03), then session 3 (05-09)
    assert stats["sessions_at_split_dropped"] == 2
    assert stats["rules"]["test_days"] == 7


def test_ids_by_first_appearance_in_time_order(tmp_path):
    lines = [
        f"1,{yoo_ts(1, 300)},60,0",  # file order is not time order within session 1
        f"1,{yoo_ts(1)},50,0",
        f"2,{yoo_ts(0)},70,0",  # session 2 is earlier in time than session 1
        f"2,{yoo_ts(0, 60)},50,0",
        f"3,{yoo_ts(3)},60,0",
        f"3,{yoo_ts(3, 60)},70,0",
    ]
    raw = tmp_path / "c.dat"
    raw.write_text("\n".join(lines) + "\n")
    train, test, ids, _ = run(tmp_path, "yoochoose", raw, min_item_support=1)
    assert ids == ["70", "50", "60"]
    assert train == [[1, 2], [2, 3]]
    assert test == [[3, 1]]


def test_test_items_restricted_to_train_and_short_test_sessions_dropped(tmp_path):
    raw = write_yoochoose(
        tmp_path / "c.dat",
        [
            (1, 0, [1, 2]),
            (2, 0.5, [2, 3]),
            (3, 2, [1, 9, 2]),  # 9 never occurs in train -> [1, 2]
            (4, 2.1, [9, 3]),  # -> [3] -> too short
            (5, 2.2, [9, 8]),  # -> [] -> gone
        ],
    )
    train, test, ids, stats = run(tmp_path, "yoochoose", raw, min_item_support=1)
    assert (train, test, ids) == ([[1, 2], [2, 3]], [[1, 2]], ["1", "2", "3"])
    assert step(stats, "split_test")["clicks"] == 7
    assert step(stats, "test_drop_items_not_in_train") == {
        "step": "test_drop_items_not_in_train",
        "clicks": 3,
        "sessions": 2,
        "items": 3,
    }
    assert step(stats, "test_drop_sessions_shorter_than_2")["sessions"] == 1


def test_yoochoose_fraction_keeps_most_recent_training_sessions(tmp_path):
    raw = write_yoochoose(
        tmp_path / "c.dat",
        [
            (1, 0, [1, 2]),
            (2, 1, [3, 4]),
            (3, 2, [5, 6]),
            (4, 3, [7, 8]),
            (5, 5, [1, 7, 8]),  # 1 is only in the dropped old part -> [7, 8]
            (6, 5.1, [3, 5]),  # -> [5] -> too short
        ],
    )
    train, test, ids, stats = run(tmp_path, "yoochoose", raw, min_item_support=1, fraction="1/2")
    assert ids == ["5", "6", "7", "8"]
    assert (train, test) == ([[1, 2], [3, 4]], [[3, 4]])
    assert stats["rules"]["fraction"] == 0.5
    assert step(stats, "keep_most_recent_fraction")["sessions"] == 2
    with pytest.raises(DataError, match="keeps none"):
        prepare("yoochoose", raw, tmp_path / "o2", min_item_support=1, fraction=1 / 8)


def test_retailrocket_views_and_30_minute_sessions(tmp_path):
    ms0 = 1_433_116_800_000  # 2015-06-01 00:00 UTC
    minute, day = 60_000, 86_400_000
    rows = [  # shuffled: events.csv is not sorted
        (ms0 + 75 * minute, 1, "view", 4),  # exactly 30 min after the previous view: same session
        (ms0, 1, "view", 1),
        (ms0 + 6 * minute, 2, "view", 1),
        (ms0 + 11 * minute, 1, "addtocart", 9),  # not a view: ignored
        (ms0 + 45 * minute, 1, "view", 3),  # 35 min gap: a new session for visitor 1
        (ms0 + 10 * minute, 1, "view", 2),
        (ms0 + 5 * minute, 2, "view", 2),
        (ms0 + 8 * day, 3, "view", 1),
        (ms0 + 8 * day + minute, 3, "view", 2),
        (ms0 + 8 * day + 2 * minute, 3, "view", 3),
    ]
    raw = tmp_path / "events.csv"
    raw.write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        + "".join(f"{t},{v},{e},{i},\n" for t, v, e, i in rows)
    )
    train, test, ids, stats = run(tmp_path, "retailrocket", raw, min_item_support=1)
    # Sessions by end time: visitor 2 [2, 1] (6 min), visitor 1 [1, 2] (10 min), [3, 4] (75 min).
    assert ids == ["2", "1", "3", "4"]
    assert train == [[1, 2], [2, 1], [3, 4]]
    assert test == [[2, 1, 3]]
    assert (stats["raw_events"], stats["raw_clicks"]) == (10, 9)
    assert stats["rules"]["session_gap_minutes"] == 30
    assert stats["rules"]["event"] == "view"


# ----------------------------------------------------------------------------- parse_fraction


@pytest.mark.parametrize(
    ("text", "value"), [("1/64", 1 / 64), (" 1/4 ", 0.25), ("0.25", 0.25), ("1", 1.0), (0.5, 0.5)]
)
def test_parse_fraction(text, value):
    assert parse_fraction(text) == value


@pytest.mark.parametrize("text", ["abc", "", "0", "2", "1/0", "-1/4", "nan", "inf", "1/64x"])
def test_parse_fraction_rejects(text):
    with pytest.raises(ConfigError, match="fraction"):
        parse_fraction(text)


# ----------------------------------------------------------------------------- prepared format


def small_dataset() -> tuple[Sessions, Sessions, list[str], dict]:
    train = Sessions.from_lists([[1, 2, 3], [3, 1], [2, 4]])
    test = Sessions.from_lists([[4, 1], [2, 3, 1]])
    return train, test, ["a", "b", "c", "d"], {"format": "x", "train_sessions": 3}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_write_read_round_trip(tmp_path):
    train, test, ids, stats = small_dataset()
    out = write_prepared(tmp_path / "d" / "ds", train, test, ids, stats)
    assert is_prepared_dir(out) and not is_prepared_dir(tmp_path)
    assert sorted(p.name for p in out.iterdir()) == [
        "item_ids.json",
        "stats.json",
        "test.npz",
        "train.npz",
    ]
    train2, test2, ids2, stats2 = read_prepared(out)
    for a, b in ((train, train2), (test, test2)):
        assert a.to_lists() == b.to_lists()
        assert b.items.dtype == np.int64 and b.offsets.dtype == np.int64
    assert (ids2, stats2) == (ids, stats)
    assert leftovers(out.parent) == []


def test_write_refuses_non_empty_dir_and_overwrites_atomically(tmp_path):
    train, test, ids, stats = small_dataset()
    out = tmp_path / "ds"
    out.mkdir()
    write_prepared(out, train, test, ids, stats)  # an empty directory is fine
    with pytest.raises(DataError, match="not empty"):
        write_prepared(out, test, train, ids, stats)
    assert read_prepared(out)[0].to_lists() == train.to_lists()
    write_prepared(out, test, train, ids, {"v": 2}, overwrite=True)
    assert read_prepared(out)[0].to_lists() == test.to_lists()
    assert read_prepared(out)[3] == {"v": 2}
    assert leftovers(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        write_prepared(tmp_path / "file", train, test, ids, stats)


def test_failed_write_leaves_nothing(tmp_path):
    train, test, ids, stats = small_dataset()
    bad_stats = {"x": object()}  # fails while writing stats.json, after the .npz files
    with pytest.raises(DataError, match="stats.json"):
        write_prepared(tmp_path / "ds", train, test, ids, bad_stats)
    assert list(tmp_path.iterdir()) == []
    out = write_prepared(tmp_path / "ds", train, test, ids, stats)
    with pytest.raises(DataError, match="stats.json"):
        write_prepared(out, test, train, ids, bad_stats, overwrite=True)
    assert read_prepared(out)[0].to_lists() == train.to_lists()  # old content intact
    assert leftovers(tmp_path) == []
    with pytest.raises(DataError, match=r"item ids must lie in 1\.\.3"):
        write_prepared(tmp_path / "ds2", train, test, ids[:3], stats)
    assert not (tmp_path / "ds2").exists()


def tamper(path: Path, **arrays) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize(
    ("name", "arrays", "match"),
    [
        ("train.npz", {"items": np.array([1, 2]), "offsets": np.array([0, 3])}, "offsets"),
        ("train.npz", {"items": np.array([1, 2]), "offsets": np.array([0, 2, 1, 2])}, "non-dec"),
        ("test.npz", {"items": np.array([1, 5]), "offsets": np.array([0, 2])}, r"1\.\.4"),
        ("test.npz", {"items": np.array([0, 1]), "offsets": np.array([0, 2])}, r"1\.\.4"),
        ("train.npz", {"items": np.array([1.0, 2.0]), "offsets": np.array([0, 2])}, "dtype"),
        ("train.npz", {"items": np.array([1, 2])}, "missing array"),
        ("test.npz", {"items": np.array([[1, 2]]), "offsets": np.array([0, 2])}, "dimensions"),
        (
            "test.npz",
            {"items": np.array([1, "x"], dtype=object), "offsets": np.array([0, 2])},
            "npz",
        ),
    ],
)
def test_read_refuses_tampered_arrays(tmp_path, name, arrays, match):
    out = write_prepared(tmp_path / "ds", *small_dataset())
    tamper(out / name, **arrays)
    with pytest.raises(DataError, match=match) as e:
        read_prepared(out)
    assert name in str(e.value)


def test_read_refuses_corrupt_files(tmp_path):
    out = write_prepared(tmp_path / "ds", *small_dataset())
    data = (out / "train.npz").read_bytes()
    (out / "train.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"train\.npz.*npz archive"):
        read_prepared(out)
    (out / "train.npz").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match=r"train\.npz"):
        read_prepared(out)
    (out / "train.npz").write_bytes(data)
    read_prepared(out)
    for text, match in (
        ('{"a": 1}', "list of strings"),
        ("[1, 2]", "list of strings"),
        ("[", "JSON"),
    ):
        (out / "item_ids.json").write_text(text)
        with pytest.raises(DataError, match=match) as e:
            read_prepared(out)
        assert "item_ids.json" in str(e.value)
    (out / "item_ids.json").unlink()
    with pytest.raises(DataError, match=r"item_ids\.json: missing"):
        read_prepared(out)
    with pytest.raises(DataError, match="not a prepared dataset directory"):
        read_prepared(tmp_path / "nope")


# ----------------------------------------------------------------------------- real raw samples


def srgnn_reference(path: Path, fmt: str, test_days: int, support: int = 5) -> tuple[list, list]:
    """A line-by-line Python port of SR-GNN's datasets/preprocess.py (UTC instead of local time)."""
    sess_clicks: dict = {}
    sess_date: dict = {}
    with open(path, newline="") as f:
        if fmt == "yoochoose":
            rows = ((r[0], r[1], r[2], None) for r in csv.reader(f))
            fmt_date = "%Y-%m-%dT%H:%M:%S"
        else:
            reader = csv.DictReader(f, delimiter=";")
            rows = (
                (r["session_id"], r["eventdate"], r["item_id"], int(r["timeframe"])) for r in reader
            )
            fmt_date = "%Y-%m-%d"

        def to_seconds(d: str) -> float:
            return calendar.timegm(time.strptime(d[:19], fmt_date))

        curid, curdate = None, None
        for sid, date, item, tf in rows:
            if curdate and curid != sid:
                sess_date[curid] = to_seconds(curdate)
            curid, curdate = sid, date
            sess_clicks.setdefault(sid, []).append(item if tf is None else (item, tf))
        sess_date[curid] = to_seconds(curdate)
    if fmt != "yoochoose":
        for s in sess_clicks:
            sess_clicks[s] = [c[0] for c in sorted(sess_clicks[s], key=lambda c: c[1])]
    for s in list(sess_clicks):
        if len(sess_clicks[s]) == 1:
            del sess_clicks[s], sess_date[s]
    counts: dict = {}
    for seq in sess_clicks.values():
        for i in seq:
            counts[i] = counts.get(i, 0) + 1
    for s in list(sess_clicks):
        kept = [i for i in sess_clicks[s] if counts[i] >= support]
        if len(kept) < 2:
            del sess_clicks[s], sess_date[s]
        else:
            sess_clicks[s] = kept
    split = max(sess_date.values()) - 86400 * test_days
    tra = sorted(((s, d) for s, d in sess_date.items() if d < split), key=lambda x: x[1])
    tes = sorted(((s, d) for s, d in sess_date.items() if d > split), key=lambda x: x[1])
    item_dict: dict = {}
    train = [[item_dict.setdefault(i, len(item_dict) + 1) for i in sess_clicks[s]] for s, _ in tra]
    test = [[item_dict[i] for i in sess_clicks[s] if i in item_dict] for s, _ in tes]
    return train, [seq for seq in test if len(seq) >= 2]


def check_invariants(out: Path, stats: dict) -> tuple[Sessions, Sessions]:
    train, test, ids, stored = read_prepared(out)
    assert stored == stats
    assert train.lengths.min() >= 2 and test.lengths.min() >= 2
    assert set(np.unique(test.items)) <= set(np.unique(train.items))
    assert np.array_equal(np.unique(train.items), np.arange(1, len(ids) + 1))
    first_seen = train.items[np.sort(np.unique(train.items, return_index=True)[1])]
    assert np.array_equal(first_seen, np.arange(1, len(ids) + 1))  # numbered by first appearance
    assert stats["items"] == len(ids) and stats["train_sessions"] == len(train)
    assert stats["test_sessions"] == len(test) and stats["test_clicks"] == len(test.items)
    assert stats["train_clicks"] == len(train.items)
    assert stats["train_examples"] == int((train.lengths - 1).sum())
    assert stats["steps"][-1]["sessions"] == len(test)
    return train, test


def test_diginetica_sample(tmp_path):
    if not DIGINETICA_SAMPLE.is_file():
        pytest.skip(f"raw sample not found: {DIGINETICA_SAMPLE}")
    # Default rules (support 5, last 7 days): the 12k-click sample keeps a few hundred sessions.
    stats = prepare("diginetica", DIGINETICA_SAMPLE, tmp_path / "d")
    train, test = check_invariants(tmp_path / "d", stats)
    assert stats["raw_clicks"] == 12391 and stats["rules"]["test_days"] == 7
    assert len(train) > 100 and len(test) > 10
    # SR-GNN does the support filter once; with until_stable=False we match its script exactly.
    stats1 = prepare("diginetica", DIGINETICA_SAMPLE, tmp_path / "d1", until_stable=False)
    train1, test1 = check_invariants(tmp_path / "d1", stats1)
    assert (train1.to_lists(), test1.to_lists()) == srgnn_reference(
        DIGINETICA_SAMPLE, "diginetica", 7
    )


def test_yoochoose_sample(tmp_path):
    if not YOOCHOOSE_SAMPLE.is_file():
        pytest.skip(f"raw sample not found: {YOOCHOOSE_SAMPLE}")
    # The 1.9k-click sample spans 7 days; support 5 would leave almost nothing, so use 2.
    stats = prepare("yoochoose", YOOCHOOSE_SAMPLE, tmp_path / "y", min_item_support=2)
    train, test = check_invariants(tmp_path / "y", stats)
    assert stats["raw_clicks"] == 1913 and len(test) > 0
    stats1 = prepare(
        "yoochoose", YOOCHOOSE_SAMPLE, tmp_path / "y1", min_item_support=2, until_stable=False
    )
    train1, test1 = check_invariants(tmp_path / "y1", stats1)
    assert (train1.to_lists(), test1.to_lists()) == srgnn_reference(
        YOOCHOOSE_SAMPLE, "yoochoose", 1, support=2
    )
    # Most recent quarter of the training sessions; test restricted to their items.
    stats4 = prepare(
        "yoochoose", YOOCHOOSE_SAMPLE, tmp_path / "y4", min_item_support=2, fraction="1/4"
    )
    train4, _ = check_invariants(tmp_path / "y4", stats4)
    assert len(train4) == len(train) // 4


# ----------------------------------------------------------------------------- bad input


def bad(tmp_path: Path, fmt: str, text: str | bytes, match: str, name: str = "raw.txt") -> None:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(DataError, match=match) as e:
        prepare(fmt, path, tmp_path / "out", min_item_support=1)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    assert not (tmp_path / "out").exists()


DIGI_HEADER = "sessionId;userId;itemId;timeframe;eventdate\n"
RR_HEADER = "timestamp,visitorid,event,itemid,transactionid\n"


@pytest.mark.parametrize(
    ("fmt", "text", "match"),
    [
        ("diginetica", "", "file is empty"),
        ("yoochoose", "\n", "file is empty"),
        ("retailrocket", "", "file is empty"),
        ("diginetica", DIGI_HEADER, "no data rows"),
        ("diginetica", DIGI_HEADER.replace(";", ",") + "1,NA,2,3,2016-01-01\n", "separator"),
        ("diginetica", "sessionId;userId;itemId;eventdate\n1;NA;2;2016-01-01\n", "timeframe"),
        (
            "diginetica",
            DIGI_HEADER + "1;NA;2;3;2016-01-01\n1;NA;x7;3;2016-01-01\n",
            "'itemId', line 3",
        ),
        ("diginetica", DIGI_HEADER + "1;NA;2;3;2016-01-01\n1;NA;;3;2016-01-01\n", "empty value"),
        (
            "diginetica",
            DIGI_HEADER + "1;NA;2;3;01/02/2016\n",
            "'eventdate', line 2: expected a YYYY",
        ),
        (
            "diginetica",
            DIGI_HEADER.encode() + b"1;NA;2;3;2016-01-01\n1;N\xff;2;3;2016-01-01\n",
            "utf-8",
        ),
        ("diginetica", b"sessionId;userId;itemId;timeframe;eventdate\xff\n", "UTF-8"),
        ("yoochoose", "1;2014-04-07T10:51:09.277Z;214;0\n", "comma-separated"),
        (
            "yoochoose",
            "1,2014-04-07T10:51:09.277Z,214,0\n2,yesterday,215,0\n",
            "'timestamp', line 2",
        ),
        ("yoochoose", "1,2014-04-07T10:51:09.277Z,abc,0\n", "'item_id', line 1"),
        ("yoochoose", "s1,2014-04-07T10:51:09.277Z,214,0\n", "'session_id', line 1"),
        ("retailrocket", "timestamp,visitorid,itemid\n1,2,3\n", "missing column.*event"),
        ("retailrocket", RR_HEADER.replace(",", ";") + "1;2;view;3;\n", "separator"),
        ("retailrocket", RR_HEADER + "1433116800000,2,view,3,\n14331x,2,view,4,\n", "'timestamp'"),
        ("retailrocket", RR_HEADER + "1433116800000,2,addtocart,3,\n", "no 'view' events"),
    ],
)
def test_bad_input_files(tmp_path, fmt, text, match):
    bad(tmp_path, fmt, text, match)


def test_no_test_or_no_train_sessions_left(tmp_path):
    # Test sessions only use items absent from train.
    raw = write_yoochoose(tmp_path / "c.dat", [(1, 0, [1, 2]), (2, 3, [3, 4])])
    with pytest.raises(DataError, match=r"no test sessions remain.*spans 3\.00 days") as e:
        prepare("yoochoose", raw, tmp_path / "out", min_item_support=1)
    assert str(e.value).startswith(str(raw))
    # Everything within the last day: nothing left for training.
    raw2 = write_yoochoose(tmp_path / "c2.dat", [(1, 0, [1, 2]), (2, 0.5, [1, 2])])
    with pytest.raises(DataError, match="no training sessions remain"):
        prepare("yoochoose", raw2, tmp_path / "out", min_item_support=1)
    # Nothing survives the support filter.
    with pytest.raises(DataError, match="no sessions remain"):
        prepare("yoochoose", raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_input_and_bad_options(tmp_path):
    with pytest.raises(DataError, match="file not found") as e:
        prepare("diginetica", tmp_path / "nope.csv", tmp_path / "out")
    assert str(tmp_path / "nope.csv") in str(e.value)
    with pytest.raises(DataError, match="not a file"):
        prepare("yoochoose", tmp_path, tmp_path / "out")
    raw = write_yoochoose(tmp_path / "c.dat", [(1, 0, [1, 2]), (2, 3, [1, 2])])
    with pytest.raises(ConfigError, match="unknown raw format"):
        prepare("tmall", raw, tmp_path / "out")
    with pytest.raises(ConfigError, match="test_days"):
        prepare("yoochoose", raw, tmp_path / "out", test_days=0)
    with pytest.raises(ConfigError, match="min_item_support"):
        prepare("yoochoose", raw, tmp_path / "out", min_item_support=0)
    with pytest.raises(ConfigError, match="fraction"):
        prepare("yoochoose", raw, tmp_path / "out", fraction=1.5)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        prepare("yoochoose", raw, tmp_path / "full", min_item_support=1)
    stats = prepare("yoochoose", raw, tmp_path / "full", min_item_support=1, overwrite=True)
    assert stats["train_sessions"] == 1 and not (tmp_path / "full" / "keep.txt").exists()
