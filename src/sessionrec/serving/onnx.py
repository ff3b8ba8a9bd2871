"""ONNX export of a run's scoring, and ONNX Runtime scoring for `SessionRecommender`.

The exported graph is the module's own forward pass: session items (B, L) int64 and lengths
(B,) int64 to scores (B, num_items + 1) float32, with the batch and length axes dynamic, so
the service's code path (vocabulary, padding, masking, top-k) is the same for both backends.
With a top-k index (`--ann`), the graph is the session encoder instead: the same inputs to
the session vectors hₛ (B, d) of a dot-product model, and the index does the scoring.
torch.onnx's exporter (torch.export, then onnxscript) writes it; every export is then checked
against torch on sessions of other shapes than the traced one, because an exporter can
silently fix a dynamic axis or a data-dependent branch. Which models export, and why the
others do not, is in docs/serving.md ("ONNX export").
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sessionrec.errors import ConfigError, RunError

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

    from sessionrec.models.base import Recommender

FORMATS = ("onnx",)
OUTPUTS = ("scores", "session_vectors")  # what an export computes: every item's score, or hₛ
TOLERANCE = 1e-4  # largest |ONNX Runtime - torch| score an export may show
META = "sessionrec."  # prefix of the metadata keys an export carries
CHECKED_META = ("model", "num_items", "weights_sha256")  # what must match the served run


class SessionVectors(torch.nn.Module):
    """A dot-product model's session encoder as a module: (items, lengths) -> hₛ."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net.session_vectors(items, lengths)


def check_exportable(model: Recommender, output: str = "scores") -> torch.nn.Module:
    """The module to export, or a ConfigError saying why `model` has none that exports."""
    from sessionrec.models.base import NeuralRecommender

    name = model.name
    if not isinstance(model, NeuralRecommender) or (
        type(model).score_batch is not NeuralRecommender.score_batch
    ):
        raise ConfigError(
            f"model '{name}' has no torch encoder to export to ONNX (it scores from counts "
            "or neighbours in Python): serve it with --backend torch"
        )
    _require_packages()
    net = model.net.eval()
    frozen = getattr(net, "export_module", None)  # graph propagation done once (DHCN)
    module = frozen() if frozen is not None else net
    if output == "scores":
        return module
    if output != "session_vectors":
        raise ConfigError(f"unknown export output '{output}' (available: {', '.join(OUTPUTS)})")
    if model.item_vectors() is None:
        raise ConfigError(
            f"model '{name}' does not score by a dot product of a session vector and an item "
            "table, so it has no session encoder to export (export its scores instead)"
        )
    return SessionVectors(module).eval()


def _require_packages() -> None:
    """ConfigError naming the `onnx` extra when its packages are not installed."""
    import importlib.util

    missing = [p for p in ("onnx", "onnxruntime", "onnxscript") if not importlib.util.find_spec(p)]
    if missing:
        raise ConfigError(
            f"ONNX export and serving need {', '.join(missing)}: pip install 'sessionrec[onnx]'"
        )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's progress prints, graph dumps, warnings and logged guards."""
    level = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(level)


def _example(num_items: int, batch: int, width: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Right-padded sessions of valid items: `batch` rows, the longest `width` clicks."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (batch,), generator=gen)
    lengths[0] = width
    items = torch.randint(1, num_items + 1, (batch, width), generator=gen)
    items[torch.arange(width)[None, :] >= lengths[:, None]] = 0
    return items, lengths


def metadata(run_dir: str | Path, model: Recommender) -> dict[str, str]:
    """What an export records: the model, its item count, the weights' digest, provenance."""
    import sessionrec
    from sessionrec.provenance import file_sha256
    from sessionrec.rundir import WEIGHTS_FILE

    return {
        "model": model.name,
        "num_items": str(model.num_items),
        "weights_sha256": file_sha256(Path(run_dir) / WEIGHTS_FILE),
        "run_dir": str(Path(run_dir).resolve()),
        "sessionrec": sessionrec.__version__,
        "torch": torch.__version__,
    }


def export_bytes(
    model: Recommender, meta: dict[str, str], output: str = "scores"
) -> tuple[bytes, float]:
    """The serialised ONNX model of `model`'s scoring (or, with output="session_vectors", its
    session encoder) and its largest difference from torch's outputs (ConfigError if it
    cannot export or they differ by more than TOLERANCE)."""
    net = check_exportable(model, output)
    batch, length = torch.export.Dim("batch", min=1), torch.export.Dim("length", min=1)
    torch._dynamo.reset()  # an earlier export's state can fix this one's dynamic axes
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                net,
                _example(model.num_items, 3, 5, seed=0),
                dynamo=True,
                input_names=["items", "lengths"],
                output_names=[output],
                dynamic_shapes=({0: batch, 1: length}, {0: batch}),
            )
        proto = program.model_proto
    except Exception as e:  # the exporter's errors are many and long: one line, why
        raise ConfigError(f"model '{model.name}' does not export to ONNX: {_first_line(e)}") from e
    for key, value in {**meta, "output": output}.items():
        proto.metadata_props.add(key=META + key, value=value)
    blob = proto.SerializeToString()
    try:
        diff = max_difference(net, session(blob, threads=1), model.num_items)
    except Exception as e:  # e.g. an axis the exporter fixed to the traced size
        raise ConfigError(
            f"model '{model.name}' does not export to ONNX faithfully: ONNX Runtime fails on "
            f"sessions of other shapes than the traced one ({_first_line(e)})"
        ) from e
    if not diff <= TOLERANCE:  # NaN too
        raise ConfigError(
            f"model '{model.name}' does not export to ONNX faithfully: ONNX Runtime's scores "
            f"differ from torch's by {diff:.3g} (more than {TOLERANCE:g})"
        )
    return blob, diff


def _first_line(error: BaseException) -> str:
    """The first line of an error and of its cause (the exporter wraps the real reason),
    without terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    lines = [f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"]
    if error.__cause__ is not None:
        lines.append(_first_line(error.__cause__))
    return "; ".join(lines)[:400]


def max_difference(
    net: torch.nn.Module, sess: InferenceSession, num_items: int, shapes: tuple = ()
) -> float:
    """Largest |ONNX Runtime - torch| score over sessions of shapes other than the traced one."""
    worst = 0.0
    for batch, width in shapes or ((1, 1), (2, 9), (17, 4), (64, 24)):
        items, lengths = _example(num_items, batch, width, seed=batch * 100 + width)
        with torch.no_grad():
            want = net(items, lengths).float().numpy()
        got = sess.run(None, {"items": items.numpy(), "lengths": lengths.numpy()})[0]
        if got.shape != want.shape:
            return float("nan")
        with np.errstate(invalid="ignore"):  # equal infinities (masked items) differ by 0
            diff = np.where(got == want, 0.0, np.abs(got - want)).max()
        if np.isnan(diff):
            return float("nan")
        worst = max(worst, float(diff))
    return worst


def session(model: bytes | str | Path, threads: int) -> InferenceSession:
    """An ONNX Runtime session on the CPU with `threads` intra-op threads that do not spin."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def export_run(
    run_dir: str | Path, output: str | Path, fmt: str = "onnx", computes: str = "scores"
) -> dict[str, Any]:
    """Write run `run_dir`'s scoring (`computes`: one of OUTPUTS) to `output` (atomically);
    what was written."""
    from sessionrec.io import atomic_write
    from sessionrec.models.registry import load_run

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}' (available: {', '.join(FORMATS)})")
    output = Path(output)
    if not output.parent.is_dir():
        raise ConfigError(f"{output}: its directory {output.parent} does not exist")
    if output.is_dir():
        raise ConfigError(f"{output}: is a directory, give a file name")
    model, _ = load_run(run_dir)
    blob, diff = export_bytes(model, metadata(run_dir, model), computes)
    atomic_write(output, lambda tmp: Path(tmp).write_bytes(blob))
    done = {"model": model.name, "num_items": model.num_items, "computes": computes}
    return {**done, "bytes": len(blob), "diff": diff}


class OnnxScorer:
    """Scores (B, num_items + 1), or session vectors (B, d), for padded sessions through an
    ONNX Runtime session."""

    def __init__(self, sess: InferenceSession, source: str) -> None:
        self.session = sess
        self.source = source  # the file it came from, or "exported at load"

    @classmethod
    def for_run(
        cls,
        run_dir: str | Path,
        model: Recommender,
        path: str | Path | None,
        threads: int,
        computes: str = "scores",
    ) -> OnnxScorer:
        """The run's export computing `computes` (one of OUTPUTS): `path` (checked to be this
        run's and to compute that), else exported now."""
        check_exportable(model, computes)
        want = {**metadata(run_dir, model), "output": computes}
        if path is None:
            blob = export_bytes(model, want, computes)[0]
            return cls(session(blob, threads), "exported at load")
        path = Path(path)
        if not path.is_file():
            raise RunError(f"{path}: no such ONNX file (make one with `sessionrec export`)")
        try:
            sess = session(path, threads)
        except Exception as e:
            raise RunError(f"{path}: not a valid ONNX model ({_first_line(e)})") from e
        _check_metadata(path, sess.get_modelmeta().custom_metadata_map, want)
        return cls(sess, str(path))

    def scores(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Float32 outputs for right-padded `items` (B, L) and their `lengths` (B,)."""
        feed = {"items": items.numpy(), "lengths": lengths.numpy()}
        return torch.from_numpy(self.session.run(None, feed)[0])


def _check_metadata(path: Path, found: dict[str, str], want: dict[str, str]) -> None:
    """RunError unless the file was exported from the served run's model and weights, and
    computes what the service needs (exports made before session vectors computed scores)."""
    have = found.get(META + "output", "scores")
    if have != want["output"]:
        flag = " --session-vectors" if want["output"] == "session_vectors" else ""
        need = "a top-k index (--ann)" if flag else "scoring every item (no --ann)"
        raise RunError(
            f"{path}: computes {have.replace('_', ' ')}, and {need} needs "
            f"{want['output'].replace('_', ' ')}: export it with `sessionrec export{flag}`"
        )
    for key in CHECKED_META:
        have = found.get(META + key)
        if have != want[key]:
            raise RunError(
                f"{path}: exported from another run ({key} {have or 'missing'}, this run has "
                f"{want[key]}): export it again with `sessionrec export`"
            )
