"""The bad-input corpus: every case builds its files, then names a CLI command and an API call.

Each case runs in a fresh working directory (`Workspace`), so every path in a command or a
message is relative to it, exactly as a user would type and read it. `test_bad_inputs.py`
runs the cases; `docs/robustness.md` shows their messages (generated from this list).
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sessionrec.data.prepare import prepare
from sessionrec.data.sources import load_dataset
from sessionrec.errors import ConfigError, DataError, RunError, SessionrecError, UnsafeFileError
from sessionrec.models import create
from sessionrec.training.config import TrainConfig
from sessionrec.training.run import evaluate_run, prepare_resume, train_and_evaluate

MARKER = "code-ran"  # a payload that runs would create this file in the working directory
GOOD_TRAIN = [[1, 2, 3], [2, 3, 4], [3, 4, 1, 2]]
GOOD_TEST = ([[1], [2, 3]], [2, 4])
DIGI_HEADER = "sessionId;userId;itemId;timeframe;eventdate\n"
DIGI_ROWS = "1;NA;7;1;2016-05-01\n1;NA;8;2;2016-05-01\n2;NA;7;1;2016-05-09\n2;NA;8;2;2016-05-09\n"


class RunsCode:
    """Pickles to a call of `os.system`: loading it with plain `pickle.load` runs a command."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {MARKER}",))


@dataclass
class Workspace:
    """The working directory of one case; `templates` holds trained runs to copy."""

    root: Path
    templates: Path

    def pickles(self, name: str, train: Any = GOOD_TRAIN, test: Any = GOOD_TEST) -> Path:
        """A benchmark directory; `None` leaves a file out, `bytes` are written as they are."""
        d = Path(name)
        d.mkdir(parents=True)
        for file, obj in (("all_train_seq.txt", train), ("test.txt", test)):
            if obj is not None:
                (d / file).write_bytes(obj if isinstance(obj, bytes) else pickle.dumps(obj))
        return d

    def file(self, name: str, content: str | bytes) -> Path:
        path = Path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def copy(self, template: str, name: str | None = None) -> Path:
        """A copy of a template (`stamp`, `narm`: trained runs; `prepared`: a dataset)."""
        dst = Path(name or template)
        shutil.copytree(self.templates / template, dst)
        return dst

    def edit_json(self, path: Path, edit: Callable[[Any], Any]) -> None:
        import json

        path.write_text(json.dumps(edit(json.loads(path.read_text()))))


# CLI arguments and the same operation through the API (None: the CLI alone does it).
Invocation = tuple[list[str], Callable[[], Any] | None]


@dataclass(frozen=True)
class Case:
    id: str
    group: str
    what: str
    build: Callable[[Workspace], Invocation]
    error: type[SessionrecError]
    match: str  # a regular expression the message must contain
    same_message: bool = True  # the API's message is the CLI's line without its prefix
    pending: str = ""  # the file whose proposed fix the case waits for (xfail until then)


CASES: list[Case] = []
PICKLES, RAW, PREPARED, RUNS, OPTIONS = (
    "Benchmark pickles (`all_train_seq.txt`, `test.txt`)",
    "Raw click logs (`datasets prepare`)",
    "Prepared datasets (`train.npz`, `test.npz`, `item_ids.json`)",
    "Run directories and checkpoints",
    "Options and settings",
)


def case(
    id: str, group: str, what: str, error: type[SessionrecError], match: str, **kw: Any
) -> Callable[[Callable[[Workspace], Invocation]], Callable[[Workspace], Invocation]]:
    def register(build: Callable[[Workspace], Invocation]) -> Callable[[Workspace], Invocation]:
        CASES.append(Case(id, group, what, build, error, match, **kw))
        return build

    return register


# --- invocations -------------------------------------------------------------------------------
def stats(d: Path | str, *extra: str) -> Invocation:
    root = extra[1] if extra[:1] == ("--data-root",) else None
    return ["datasets", "stats", str(d), *extra], lambda: load_dataset(d, root)


def train_pop(d: Path) -> Invocation:
    args = ["train", "pop", "--dataset", str(d), "--out", "run", "--no-progress"]
    return args, lambda: load_dataset(d)


def prep(fmt: str, path: Path, out: str = "prepared") -> Invocation:
    args = ["datasets", "prepare", "--format", fmt, "--input", str(path), "--output", out]
    args += ["--min-item-support", "1"]
    return args, lambda: prepare(fmt, path, out, min_item_support=1)


def evaluate(run: Path) -> Invocation:
    return ["evaluate", str(run)], lambda: evaluate_run(run)


def resume(run: Path, model: str) -> Invocation:
    def api() -> Any:
        recommender, data, config = prepare_resume(run, model)
        return train_and_evaluate(recommender, data, config, run, resume=True)

    return ["train", model, "--out", str(run), "--resume", "--no-progress"], api


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


# --- benchmark pickles -------------------------------------------------------------------------
@case(
    "pickle-truncated",
    PICKLES,
    "`all_train_seq.txt` cut off halfway",
    DataError,
    r"digi/all_train_seq\.txt: not a valid pickle of session data",
)
def _(ws: Workspace) -> Invocation:
    return stats(ws.pickles("digi", train=half(pickle.dumps(GOOD_TRAIN * 50))))


@case("pickle-empty", PICKLES, "`test.txt` is empty", DataError, r"digi/test\.txt: file is empty")
def _(ws: Workspace) -> Invocation:
    return train_pop(ws.pickles("digi", test=b""))


@case(
    "pickle-is-text",
    PICKLES,
    "`all_train_seq.txt` is a CSV, not a pickle",
    DataError,
    r"all_train_seq\.txt: not a valid pickle",
)
def _(ws: Workspace) -> Invocation:
    return stats(ws.pickles("digi", train=b"1,2,3\n2,3,4\n"))


@case(
    "pickle-runs-code",
    PICKLES,
    "`test.txt` holds a payload that runs a shell command when unpickled",
    UnsafeFileError,
    r"digi/test\.txt: refused: refers to (posix|os)\.system",
)
def _(ws: Workspace) -> Invocation:
    return train_pop(ws.pickles("digi", test=([[1]], [RunsCode()])))


@case(
    "pickle-dict",
    PICKLES,
    "`all_train_seq.txt` holds a dict",
    UnsafeFileError,
    r"all_train_seq\.txt: refused: contains a dict",
)
def _(ws: Workspace) -> Invocation:
    return stats(ws.pickles("digi", train={"sessions": GOOD_TRAIN}))


@case(
    "pickle-float-labels",
    PICKLES,
    "`test.txt` labels are floats",
    UnsafeFileError,
    r"test\.txt: refused: contains a float",
)
def _(ws: Workspace) -> Invocation:
    return stats(ws.pickles("digi", test=([[1], [2]], [2.0, 3.0])))


@case(
    "pickle-flat-list",
    PICKLES,
    "`all_train_seq.txt` is a list of ints, not of sessions",
    DataError,
    r"all_train_seq\.txt: expected a list of sessions",
)
def _(ws: Workspace) -> Invocation:
    return stats(ws.pickles("digi", train=[1, 2, 3]))


@case(
    "pickle-nested-session",
    PICKLES,
    "a training session holds a list instead of an item id",
    DataError,
    r"all_train_seq\.txt: session 1 holds a list, expected item ids",
)
def _(ws: Workspace) -> Invocation:
    return stats(ws.pickles("digi", train=[[1, 2], [3, [4, 5]]]))


@case(
    "pickle-nested-label",
    PICKLES,
    "a `test.txt` label is a list",
    DataError,
    r"test\.txt: label 1 is a list, expected an item id",
)
def _(ws: Workspace) -> Invocation:
    return stats(ws.pickles("digi", test=([[1], [2]], [2, [3]])))


@case(
    "test-three-tuple",
    PICKLES,
    "`test.txt` is a 3-tuple",
    DataError,
    r"test\.txt: expected a 2-tuple \(sequences, labels\) or a 4-tuple",
)
def _(ws: Workspace) -> Invocation:
    return stats(ws.pickles("digi", test=([[1]], [2], [0])))


@case(
    "test-label-count",
    PICKLES,
    "`test.txt` has fewer labels than sequences",
    DataError,
    r"test\.txt: 1 labels for 2 sequences",
)
def _(ws: Workspace) -> Invocation:
    return stats(ws.pickles("digi", test=([[1], [2]], [3])))


@case(
    "test-missing",
    PICKLES,
    "the dataset directory has no `test.txt`",
    DataError,
    r"digi/test\.txt: missing \(a dataset directory needs all_train_seq\.txt and test\.txt\)",
)
def _(ws: Workspace) -> Invocation:
    return train_pop(ws.pickles("digi", test=None))


@case(
    "test-empty-sequence",
    PICKLES,
    "a test sequence of length 0",
    DataError,
    r"test\.txt: a test sequence is empty",
)
def _(ws: Workspace) -> Invocation:
    return stats(ws.pickles("digi", test=([[1], []], [2, 3])))


@case(
    "train-sessions-too-short",
    PICKLES,
    "every training session has 0 or 1 clicks",
    DataError,
    r"digi: no training examples \(every training session has fewer than 2 clicks\)",
)
def _(ws: Workspace) -> Invocation:
    return train_pop(ws.pickles("digi", train=[[], [1], [2]]))


@case(
    "item-id-zero",
    PICKLES,
    "a training item id is 0 (the padding id)",
    DataError,
    r"all_train_seq\.txt: item id 0 out of range \(ids start at 1; 0 is padding\)",
)
def _(ws: Workspace) -> Invocation:
    return stats(ws.pickles("digi", train=[[1, 2], [0, 3]]))


@case(
    "item-id-negative",
    PICKLES,
    "a test label is negative",
    DataError,
    r"test\.txt: item id -3 out of range",
)
def _(ws: Workspace) -> Invocation:
    return stats(ws.pickles("digi", test=([[1], [2]], [2, -3])))


@case(
    "item-id-overflow",
    PICKLES,
    "an item id beyond 64 bits",
    DataError,
    r"all_train_seq\.txt: session 2: item id 36893488147419103232 out of range",
)
def _(ws: Workspace) -> Invocation:
    return stats(ws.pickles("digi", train=[[1, 2], [2, 3], [3, 2**65]]))


@case(
    "item-ids-sparse",
    PICKLES,
    "raw ids up to 5e9 for 5 items: the item table would not fit in memory",
    DataError,
    r"digi: item ids go up to 5,000,000,000 but only 5 distinct ids occur",
)
def _(ws: Workspace) -> Invocation:
    return train_pop(ws.pickles("digi", train=[[1, 2], [2, 3], [3, 5_000_000_000]]))


@case(
    "dataset-is-a-file",
    PICKLES,
    "`--dataset` names a file",
    DataError,
    r"digi/test\.txt: not a directory",
)
def _(ws: Workspace) -> Invocation:
    ws.pickles("digi")
    return stats(Path("digi/test.txt"))


@case(
    "dataset-dir-empty",
    PICKLES,
    "`--dataset` names an empty directory",
    DataError,
    r"digi: not a dataset directory \(expected all_train_seq\.txt and test\.txt",
)
def _(ws: Workspace) -> Invocation:
    Path("digi").mkdir()
    return stats(Path("digi"))


@case(
    "symlink-file-escapes",
    PICKLES,
    "`test.txt` is a symlink to a file outside the dataset directory",
    UnsafeFileError,
    r"digi/test\.txt: refused: it resolves to .*/elsewhere/test\.txt, outside the data root digi",
)
def _(ws: Workspace) -> Invocation:
    ws.pickles("elsewhere")
    d = ws.pickles("digi", test=None)
    (d / "test.txt").symlink_to(Path("../elsewhere/test.txt"))
    return stats(d)


@case(
    "symlink-dataset-escapes",
    PICKLES,
    "a named benchmark under `--data-root` is a symlink out of the data root",
    UnsafeFileError,
    r"data/diginetica: refused: it resolves to .*/elsewhere, outside the data root data",
)
def _(ws: Workspace) -> Invocation:
    ws.pickles("elsewhere")
    Path("data").mkdir()
    Path("data/diginetica").symlink_to(Path("../elsewhere"))
    return stats("diginetica", "--data-root", "data")


# --- raw click logs ----------------------------------------------------------------------------
@case(
    "csv-empty",
    RAW,
    "an empty Diginetica file",
    DataError,
    r"views\.csv: file is empty \(expected the Diginetica train-item-views\.csv\)",
)
def _(ws: Workspace) -> Invocation:
    return prep("diginetica", ws.file("views.csv", ""))


@case(
    "csv-header-only",
    RAW,
    "a Diginetica header without rows",
    DataError,
    r"views\.csv: has no data rows",
)
def _(ws: Workspace) -> Invocation:
    return prep("diginetica", ws.file("views.csv", DIGI_HEADER))


@case(
    "csv-missing-column",
    RAW,
    "Diginetica without the `timeframe` column",
    DataError,
    r"views\.csv: missing column\(s\) timeframe for the Diginetica",
)
def _(ws: Workspace) -> Invocation:
    text = "sessionId;userId;itemId;eventdate\n1;NA;7;2016-05-01\n"
    return prep("diginetica", ws.file("views.csv", text))


@case(
    "csv-wrong-separator",
    RAW,
    "Diginetica with `,` instead of `;`",
    DataError,
    r"views\.csv: header has no ';' separator but contains ','",
)
def _(ws: Workspace) -> Invocation:
    text = (DIGI_HEADER + DIGI_ROWS).replace(";", ",")
    return prep("diginetica", ws.file("views.csv", text))


@case(
    "csv-non-numeric-item",
    RAW,
    "a non-numeric item id",
    DataError,
    r"views\.csv: column 'itemId', line 3: expected an integer item id, got 'x8'",
)
def _(ws: Workspace) -> Invocation:
    text = DIGI_HEADER + DIGI_ROWS.replace(";8;", ";x8;", 1)
    return prep("diginetica", ws.file("views.csv", text))


@case(
    "csv-non-numeric-timestamp",
    RAW,
    "a YooChoose timestamp that is not a timestamp",
    DataError,
    r"clicks\.dat: column 'timestamp', line 2: expected a timestamp",
)
def _(ws: Workspace) -> Invocation:
    text = "1,2014-04-07T10:51:09.277Z,214,0\n1,yesterday,215,0\n"
    return prep("yoochoose", ws.file("clicks.dat", text))


@case(
    "csv-bad-date",
    RAW,
    "a Diginetica eventdate that is not a date",
    DataError,
    r"views\.csv: column 'eventdate', line 2: expected a YYYY-MM-DD date, got '2016-13-45'",
)
def _(ws: Workspace) -> Invocation:
    return prep("diginetica", ws.file("views.csv", DIGI_HEADER + "1;NA;7;1;2016-13-45\n"))


@case(
    "csv-compressed",
    RAW,
    "a gzip file given as the input",
    DataError,
    r"views\.csv: not a UTF-8 text file",
)
def _(ws: Workspace) -> Invocation:
    return prep("diginetica", ws.file("views.csv", gzip.compress(DIGI_HEADER.encode())))


@case(
    "csv-all-sessions-length-one",
    RAW,
    "every session has a single click",
    DataError,
    r"clicks\.dat: no sessions remain after dropping sessions shorter than 2",
)
def _(ws: Workspace) -> Invocation:
    text = "1,2014-04-01T10:00:00.000Z,214,0\n2,2014-04-05T10:00:00.000Z,215,0\n"
    return prep("yoochoose", ws.file("clicks.dat", text))


@case(
    "csv-input-missing",
    RAW,
    "the input file does not exist",
    DataError,
    r"views\.csv: file not found",
)
def _(ws: Workspace) -> Invocation:
    return prep("diginetica", Path("views.csv"))


@case(
    "csv-output-not-empty",
    RAW,
    "the output directory already holds files",
    DataError,
    r"out: directory exists and is not empty \(use overwrite to replace it\)",
)
def _(ws: Workspace) -> Invocation:
    ws.file("out/notes.txt", "keep me")
    return prep("diginetica", ws.file("views.csv", DIGI_HEADER + DIGI_ROWS), out="out")


@case(
    "events-missing-column",
    RAW,
    "a click log (--format events) without the session column",
    DataError,
    r"log\.csv: missing column 'SessionId' \(found: user, ItemId, Time; --session-column",
)
def _(ws: Workspace) -> Invocation:
    return prep("events", ws.file("log.csv", "user,ItemId,Time\n1,7,1700000000\n"))


@case(
    "events-bad-time",
    RAW,
    "a click log whose time is neither a number nor ISO-8601",
    DataError,
    r"log\.tsv: column 'Time', line 3: expected an ISO-8601 time .*, got 'tuesday'",
)
def _(ws: Workspace) -> Invocation:
    text = "SessionId\tItemId\tTime\n1\t7\t2024-05-01T10:00:00Z\n1\t8\ttuesday\n"
    return prep("events", ws.file("log.tsv", text))


@case(
    "recbole-duplicate-header",
    RAW,
    "a RecBole .inter file naming a column twice",
    DataError,
    r"shop\.inter: line 1: column 'item_id' appears twice in the header",
)
def _(ws: Workspace) -> Invocation:
    text = "session_id:token\titem_id:token\titem_id:token\n1\t7\t8\n"
    return prep("recbole", ws.file("shop.inter", text))


@case(
    "parquet-not-parquet",
    RAW,
    "a .parquet file that is not Parquet",
    DataError,
    r"log\.parquet: cannot be read as Parquet",
)
def _(ws: Workspace) -> Invocation:
    return prep("events", ws.file("log.parquet", "SessionId,ItemId,Time\n1,7,5\n"))


# --- prepared datasets -------------------------------------------------------------------------
@case(
    "prepared-ids-out-of-range",
    PREPARED,
    "`train.npz` holds an item id beyond `item_ids.json`",
    DataError,
    r"prepared/train\.npz: item ids must lie in 1\.\.3 \(the length of item_ids\.json\), "
    r"found 1\.\.9",
)
def _(ws: Workspace) -> Invocation:
    d = ws.copy("prepared")
    np.savez(d / "train.npz", items=np.array([1, 2, 9]), offsets=np.array([0, 3]))
    return stats(d)


@case(
    "prepared-pickled-array",
    PREPARED,
    "`train.npz` holds an object array whose pickle runs a shell command",
    DataError,
    r"prepared/train\.npz: cannot be read as an \.npz archive "
    r"\(ValueError: Object arrays cannot be loaded when allow_pickle=False\)",
)
def _(ws: Workspace) -> Invocation:
    d = ws.copy("prepared")
    items = np.array([RunsCode(), RunsCode()], dtype=object)
    np.savez(d / "train.npz", items=items, offsets=np.array([0, 2]))
    return stats(d)


@case(
    "prepared-truncated",
    PREPARED,
    "`test.npz` cut off",
    DataError,
    r"prepared/test\.npz: cannot be read as an \.npz archive",
)
def _(ws: Workspace) -> Invocation:
    d = ws.copy("prepared")
    (d / "test.npz").write_bytes(half((d / "test.npz").read_bytes()))
    return stats(d)


@case(
    "prepared-item-ids-wrong-type",
    PREPARED,
    "`item_ids.json` is an object, not a list",
    DataError,
    r"prepared/item_ids\.json: expected a JSON list of strings",
)
def _(ws: Workspace) -> Invocation:
    d = ws.copy("prepared")
    (d / "item_ids.json").write_text('{"a": 1}')
    return stats(d)


# --- run directories ---------------------------------------------------------------------------
@case(
    "run-of-another-model",
    RUNS,
    "`train narm --resume` on a STAMP run",
    RunError,
    r"stamp: holds a 'stamp' run, not 'narm'",
)
def _(ws: Workspace) -> Invocation:
    return resume(ws.copy("stamp"), "narm")


@case(
    "run-dir-missing",
    RUNS,
    "`evaluate` a directory that does not exist",
    RunError,
    r"nowhere: not a run directory \(no config\.json\)",
)
def _(ws: Workspace) -> Invocation:
    return evaluate(Path("nowhere"))


@case(
    "run-dir-is-a-file",
    RUNS,
    "`evaluate` a file",
    RunError,
    r"notes\.txt: not a run directory",
)
def _(ws: Workspace) -> Invocation:
    return evaluate(ws.file("notes.txt", "hello"))


@case(
    "checkpoint-garbage",
    RUNS,
    "`checkpoint.pt` overwritten with text",
    RunError,
    r"stamp/checkpoint\.pt: corrupted or unsafe checkpoint",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    (run / "checkpoint.pt").write_text("not a checkpoint")
    return resume(run, "stamp")


@case(
    "checkpoint-truncated",
    RUNS,
    "`checkpoint.pt` cut off halfway",
    RunError,
    r"stamp/checkpoint\.pt: corrupted or unsafe checkpoint",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    (run / "checkpoint.pt").write_bytes(half((run / "checkpoint.pt").read_bytes()))
    return resume(run, "stamp")


@case(
    "checkpoint-runs-code",
    RUNS,
    "`checkpoint.pt` holds a pickle that runs a shell command",
    RunError,
    r"stamp/checkpoint\.pt: corrupted or unsafe checkpoint \(UnpicklingError\)",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    torch.save({"net": RunsCode()}, run / "checkpoint.pt")
    return resume(run, "stamp")


def export(run: Path | str, output: str, fmt: str = "onnx") -> Invocation:
    from sessionrec.serving.onnx import export_run

    args = ["export", str(run), "--format", fmt, "--output", output]
    return args, lambda: export_run(run, output, fmt)


@case(
    "export-unknown-format",
    RUNS,
    "`export --format tflite`",
    ConfigError,
    r"unknown export format 'tflite' \(available: onnx\)",
)
def _(ws: Workspace) -> Invocation:
    return export(ws.copy("stamp"), "stamp.tflite", "tflite")


@case(
    "export-output-dir-missing",
    RUNS,
    "`export --output` in a directory that does not exist",
    ConfigError,
    r"models/stamp\.onnx: its directory models does not exist",
)
def _(ws: Workspace) -> Invocation:
    return export(ws.copy("stamp"), "models/stamp.onnx")


@case(
    "export-missing-run",
    RUNS,
    "`export` of a run directory that does not exist",
    RunError,
    r"runs/stamp: not a run directory",
)
def _(ws: Workspace) -> Invocation:
    return export("runs/stamp", "stamp.onnx")


@case(
    "recommend-ann-option-of-another-index",
    RUNS,
    "`recommend --ann int8,nprobe=4` (an IVF option given to the int8 index)",
    ConfigError,
    r"--ann: 'nprobe=4' is not an option of int8 \(options: none\)",
)
def _(ws: Workspace) -> Invocation:
    from sessionrec.serving.ann import AnnConfig

    run = ws.copy("stamp")
    args = ["recommend", str(run), "--session", "1,2", "--ann", "int8,nprobe=4"]
    return args, lambda: AnnConfig.parse("int8,nprobe=4")


@case(
    "checkpoint-of-another-model",
    RUNS,
    "a NARM `checkpoint.pt` in a STAMP run",
    RunError,
    r"stamp/checkpoint\.pt: does not fit this model \(Error\(s\) in loading state_dict for "
    r"STAMP: Missing key\(s\)",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    shutil.copy(ws.templates / "narm" / "checkpoint.pt", run / "checkpoint.pt")
    return resume(run, "stamp")


@case(
    "checkpoint-missing",
    RUNS,
    "`--resume` a run without `checkpoint.pt`",
    RunError,
    r"stamp: no checkpoint to resume from",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    (run / "checkpoint.pt").unlink()
    return resume(run, "stamp")


@case(
    "weights-truncated",
    RUNS,
    "`model.safetensors` cut off halfway",
    RunError,
    r"stamp/model\.safetensors: corrupted weights \(Error while deserializing header",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    (run / "model.safetensors").write_bytes(half((run / "model.safetensors").read_bytes()))
    return evaluate(run)


@case(
    "weights-are-a-pickle",
    RUNS,
    "`model.safetensors` replaced by a torch pickle that runs a shell command",
    RunError,
    r"stamp/model\.safetensors: corrupted weights",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    torch.save({"item_emb.weight": RunsCode()}, run / "model.safetensors")
    return evaluate(run)


@case(
    "weights-of-another-model",
    RUNS,
    "NARM's `model.safetensors` in a STAMP run",
    RunError,
    r"stamp/model\.safetensors: weights do not fit model 'stamp': .*Missing key",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    shutil.copy(ws.templates / "narm" / "model.safetensors", run / "model.safetensors")
    return evaluate(run)


@case(
    "weights-missing",
    RUNS,
    "a run without `model.safetensors`",
    RunError,
    r"stamp: no model\.safetensors",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    (run / "model.safetensors").unlink()
    return evaluate(run)


@case(
    "config-not-json",
    RUNS,
    "`config.json` cut off",
    RunError,
    r"stamp/config\.json: corrupted \(",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    text = (run / "config.json").read_text()
    (run / "config.json").write_text(text[: text.index('"params"') + 4])  # same cut every run
    return evaluate(run)


@case(
    "metrics-not-json",
    RUNS,
    "`metrics.json` cut off (`evaluate` compares with it)",
    RunError,
    r"stamp/metrics\.json: corrupted \(",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    (run / "metrics.json").write_text('{"model": "stamp", "test": {"hr@5": 0.')
    return ["evaluate", str(run)], None  # only the CLI reads it back


@case(
    "config-not-an-object",
    RUNS,
    "`config.json` is a JSON list",
    RunError,
    r"stamp/config\.json: expected a JSON object, got list",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    ws.edit_json(run / "config.json", lambda c: [c])
    return resume(run, "stamp")


@case(
    "config-missing-field",
    RUNS,
    "`config.json` without its `train` settings",
    RunError,
    r"stamp/config\.json: missing field 'train'",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    ws.edit_json(run / "config.json", lambda c: {k: v for k, v in c.items() if k != "train"})
    return evaluate(run)


@case(
    "config-unknown-key",
    RUNS,
    "`config.json` training settings with an unknown key",
    RunError,
    r"stamp/config\.json: unknown hyper-parameter 'warmup' for training",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    ws.edit_json(run / "config.json", lambda c: {**c, "train": {**c["train"], "warmup": 5}})
    return evaluate(run)


@case(
    "config-wrong-type",
    RUNS,
    '`config.json` with `batch_size: "big"`',
    RunError,
    r"stamp/config\.json: hyper-parameter 'batch_size' of training must be int, got 'big'",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    ws.edit_json(run / "config.json", lambda c: {**c, "train": {**c["train"], "batch_size": "big"}})
    return resume(run, "stamp")


@case(
    "config-num-items-wrong-type",
    RUNS,
    '`config.json` with `num_items: "many"`',
    RunError,
    r"stamp/config\.json: field 'num_items' must be int, got 'many'",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    ws.edit_json(run / "config.json", lambda c: {**c, "num_items": "many"})
    return resume(run, "stamp")


@case(
    "model-json-wrong-type",
    RUNS,
    '`model.json` with `embedding_dim: "wide"`',
    ConfigError,
    r"hyper-parameter 'embedding_dim' of stamp must be int, got 'wide'",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    ws.edit_json(
        run / "model.json", lambda m: {**m, "params": {**m["params"], "embedding_dim": "wide"}}
    )
    return evaluate(run)


@case(
    "model-json-huge-table",
    RUNS,
    "`model.json` claims 10^15 items",
    RunError,
    r"stamp/model\.json: cannot build a 'stamp' model with 1,000,000,000,000,000 items",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    ws.edit_json(run / "model.json", lambda m: {**m, "num_items": 10**15})
    return evaluate(run)


@case(
    "select-from-unfinished",
    RUNS,
    "`--select-from` a run that has not finished (no metrics.json)",
    RunError,
    r"stamp/metrics.json: missing \(the run has not finished\)",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    (run / "metrics.json").unlink()
    args = ["train", "stamp", "--protocol", "paper", "--select-from", str(run), "--out", "refit"]
    return [*args, "--no-progress"], None


# --- options -----------------------------------------------------------------------------------
@case(
    "set-unknown-key",
    OPTIONS,
    "`--set` of a setting that does not exist",
    ConfigError,
    r"unknown setting 'dropout' for stamp; model hyper-parameters: add_ms, emb_init_std",
    same_message=False,
)
def _(ws: Workspace) -> Invocation:
    args = ["train", "stamp", "--set", "dropout=0.2", "--out", "run", "--no-progress"]
    return args, lambda: create("stamp", 10, dropout=0.2)


@case(
    "select-from-without-paper",
    OPTIONS,
    "`--select-from` without `--protocol paper`",
    ConfigError,
    r"--select-from starts a paper-protocol refit: add --protocol paper",
)
def _(ws: Workspace) -> Invocation:
    run = ws.copy("stamp")
    return ["train", "stamp", "--select-from", str(run), "--out", "refit", "--no-progress"], None


@case(
    "train-unknown-recipe",
    OPTIONS,
    "`--recipe` a model does not have",
    ConfigError,
    r"focol has no recipe 'gpu' \(its recipes: cpu\)",
)
def _(ws: Workspace) -> Invocation:
    from sessionrec.models.registry import recipe_settings

    args = ["train", "focol", "--recipe", "gpu", "--out", "run", "--no-progress"]
    return args, lambda: recipe_settings("focol", "gpu")


@case(
    "set-bad-schedule",
    OPTIONS,
    "`--set lr_horizon=budget` without a time budget",
    ConfigError,
    r"lr_horizon=budget needs a time budget \(max_minutes\)",
)
def _(ws: Workspace) -> Invocation:
    args = ["train", "stamp", "--set", "lr_horizon=budget", "--out", "run", "--no-progress"]
    return args, lambda: TrainConfig(lr_horizon="budget").validate()


@case(
    "set-negative-size",
    OPTIONS,
    "`--set embedding_dim=-5`",
    ConfigError,
    r"cannot build a 'stamp' model with .* items and embedding_dim=-5 \(",
    same_message=False,
)
def _(ws: Workspace) -> Invocation:
    args = ["train", "stamp", "--set", "embedding_dim=-5", "--out", "run", "--no-progress"]
    return args, lambda: create("stamp", 10, embedding_dim=-5)


@case(
    "set-wrong-type",
    OPTIONS,
    "`--set batch_size=big`",
    ConfigError,
    r"hyper-parameter 'batch_size' of training must be int, got 'big'",
)
def _(ws: Workspace) -> Invocation:
    from sessionrec.models.params import build_params

    args = ["train", "stamp", "--set", "batch_size=big", "--out", "run", "--no-progress"]
    return args, lambda: build_params(TrainConfig, {"batch_size": "big"}, "training")


@case(
    "set-bad-metric",
    OPTIONS,
    "`--set metric=mrr@x`",
    ConfigError,
    r"metric must look like mrr@20, hr@10 or ndcg@20, got 'mrr@x'",
)
def _(ws: Workspace) -> Invocation:
    args = ["train", "stamp", "--set", "metric=mrr@x", "--out", "run", "--no-progress"]
    return args, lambda: TrainConfig(metric="mrr@x").validate()


@case(
    "set-nan-lr",
    OPTIONS,
    "`--lr nan`",
    ConfigError,
    r"lr must be > 0",
)
def _(ws: Workspace) -> Invocation:
    args = ["train", "stamp", "--lr", "nan", "--out", "run", "--no-progress"]
    return args, lambda: TrainConfig(lr=float("nan")).validate()


@case(
    "out-is-a-file",
    OPTIONS,
    "`--out` names an existing file",
    RunError,
    r"notes\.txt: exists and is not a directory",
)
def _(ws: Workspace) -> Invocation:
    out = ws.file("notes.txt", "hello")

    def api() -> Any:
        data = load_dataset("synthetic")
        model = create("pop", data.num_items)
        return train_and_evaluate(model, data, TrainConfig(), out)

    return ["train", "pop", "--out", str(out), "--no-progress"], api
