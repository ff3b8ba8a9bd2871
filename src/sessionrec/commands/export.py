"""`sessionrec export RUN_DIR --format onnx --output FILE`: a run's scoring for other runtimes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sessionrec.commands.options import RunDirArg
from sessionrec.commands.output import out


def export(
    run_dir: RunDirArg,
    output: Annotated[Path, typer.Option(help="The file to write (its directory must exist).")],
    fmt: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    session_vectors: Annotated[
        bool,
        typer.Option(
            "--session-vectors",
            help="Export the session encoder (sessions to hₛ) of a dot-product model, for "
            "`serve --backend onnx --ann ...`, instead of the scores of every item.",
        ),
    ] = False,
) -> None:
    """Export a trained neural run's scoring (sessions to scores of every item) to ONNX,
    checked against torch; `serve --backend onnx --onnx FILE` serves it."""
    from sessionrec.serving.onnx import export_run

    computes = "session_vectors" if session_vectors else "scores"
    done = export_run(run_dir, output, fmt, computes)
    what = "session vectors" if session_vectors else "scores"
    out.print(
        f"exported {done['model']} ({done['num_items']:,} items) from {run_dir} to {output} "
        f"({done['bytes'] / 1e6:.1f} MB; ONNX Runtime's {what} differ from torch's by at "
        f"most {done['diff']:.2g})",
        highlight=False,
        soft_wrap=True,
    )
