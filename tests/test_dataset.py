import numpy as np
import pytest

from conftest import require_benchmark
from helpers import write_pickles
from sessionrec.data.dataset import split_valid
from sessionrec.data.sessions import Sessions
from sessionrec.data.sources import load_dataset
from sessionrec.errors import ConfigError, DataError


def test_prefixes_hand_computed():
    s = Sessions.from_lists([[1, 2, 3], [4], [5, 6]])
    ex = s.prefixes()
    got = [(ex.sequence(i).tolist(), int(ex.target[i])) for i in range(len(ex))]
    # longest prefix first within a session; a 1-click session gives nothing
    assert got == [([1, 2], 3), ([1], 2), ([5], 6)]


def test_padded_keeps_last_clicks():
    ex = Sessions.from_lists([[1, 2, 3, 4], [7]]).as_examples(np.array([9, 8]))
    items, lengths = ex.padded(np.array([0, 1]), max_len=3)
    assert items.tolist() == [[2, 3, 4], [7, 0, 0]]
    assert lengths.tolist() == [3, 1]


def test_validation_split_is_the_last_fraction():
    ex = Sessions.from_lists([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]]).prefixes()  # 10 examples
    fit, valid = split_valid(ex, 0.2)
    assert len(fit) == 8 and len(valid) == 2
    assert valid.target.tolist() == ex.target[-2:].tolist()
    assert split_valid(ex, 0.0)[1].target.size == 0
    with pytest.raises(ConfigError):
        split_valid(ex, 1.0)


def test_directory_with_both_test_formats(tmp_path):
    train = [[1, 2, 3], [2, 3], [3, 1, 2, 4]]
    d2 = load_dataset(
        write_pickles(tmp_path / "a", train, ([[1], [2, 3]], [2, 4])), valid_fraction=0.0
    )
    d4 = load_dataset(
        write_pickles(tmp_path / "b", train, ([7, 8], [[1], [2, 3]], [2, 4], [0, 0])),
        valid_fraction=0.0,
    )
    for d in (d2, d4):
        assert d.num_items == 4
        assert len(d.train) == 2 + 1 + 3
        assert [d.test.sequence(i).tolist() for i in range(2)] == [[1], [2, 3]]
        assert d.test.target.tolist() == [2, 4]
    stats = d2.stats()
    assert stats["train_sessions"] == 3 and stats["train_examples"] == 6 and stats["items"] == 4


@pytest.mark.parametrize(
    "train,test,match",
    [
        ([[1, 2]], ([[1]], [2, 3]), "2 labels for 1 sequences"),
        ([[1, 2]], [[1], [2]], "expected a 2-tuple"),
        ([[0, 2]], ([[1]], [2]), "item id 0 out of range"),
        ([[1, 2]], ([[]], [2]), "test sequence is empty"),
        ([[1]], ([[1]], [1]), "no training examples"),
        ([1, 2], ([[1]], [2]), "expected a list of sessions"),
    ],
)
def test_malformed_directories(tmp_path, train, test, match):
    with pytest.raises(DataError, match=match):
        load_dataset(write_pickles(tmp_path / "d", train, test))


def test_missing_file_and_unknown_name(tmp_path):
    d = write_pickles(tmp_path / "d", [[1, 2]], ([[1]], [2]))
    (d / "test.txt").unlink()
    with pytest.raises(DataError, match=r"test\.txt: missing"):
        load_dataset(d)
    with pytest.raises(ConfigError, match="unknown dataset 'nope'"):
        load_dataset("nope")
    with pytest.raises(DataError, match="not a dataset directory"):
        load_dataset(tmp_path)


EXPECTED = {  # ../shared/datasets/README.md
    "diginetica": (186_670, 719_470, 60_858, 43_097, 43_097),
    "tmall": (65_286, 351_268, 25_898, 40_727, 40_727),
    "retailrocket": (126_168, 559_816, 15_132, 36_968, 36_968),
    "yoochoose1_64": (116_167, 369_859, 55_898, 17_745, 37_483),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_benchmark_statistics(name):
    require_benchmark(name)
    s = load_dataset(name).stats()
    got = (s["train_sessions"], s["train_examples"], s["test_cases"], s["items"], s["max_item_id"])
    assert got == EXPECTED[name]
    assert s["valid_examples"] == round(0.1 * s["train_examples"])
