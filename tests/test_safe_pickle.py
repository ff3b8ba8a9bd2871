import os
import pickle

import pytest

from sessionrec.data.safe_pickle import load_plain_pickle
from sessionrec.errors import DataError, UnsafeFileError


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write(path, obj, protocol=pickle.HIGHEST_PROTOCOL):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_loads_lists_tuples_ints(tmp_path, protocol):
    obj = ([[1, 2], [3]], [4, 5])
    assert load_plain_pickle(_write(tmp_path / "t.txt", obj, protocol)) == obj


def test_code_running_payload_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "test.txt", ([[1, 2]], [_RunsShell(marker)]))
    with pytest.raises(
        UnsafeFileError, match=r"test\.txt.*refused.*posix\.system|test\.txt.*refused.*system"
    ):
        load_plain_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize("bad", [[1.5], ["a"], {"a": 1}, [None], [b"x"], [True], [[1, {2}]]])
def test_non_int_content_is_refused(tmp_path, bad):
    with pytest.raises(UnsafeFileError, match="only lists, tuples and ints"):
        load_plain_pickle(_write(tmp_path / "x.txt", bad))


def test_truncated_empty_and_missing(tmp_path):
    data = pickle.dumps([[1, 2, 3]] * 100)
    (tmp_path / "trunc.txt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="trunc.txt: not a valid pickle"):
        load_plain_pickle(tmp_path / "trunc.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(DataError, match="empty.txt: file is empty"):
        load_plain_pickle(tmp_path / "empty.txt")
    with pytest.raises(DataError, match="missing.txt: cannot read"):
        load_plain_pickle(tmp_path / "missing.txt")
    (tmp_path / "text.txt").write_text("1,2,3\n")
    with pytest.raises(DataError, match="text.txt"):
        load_plain_pickle(tmp_path / "text.txt")
