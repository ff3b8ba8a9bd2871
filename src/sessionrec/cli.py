"""The `sessionrec` command line (Typer + Rich): the app, its commands (one module each in
sessionrec.commands) and `main`. Errors: one line on stderr, non-zero exit."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn

import typer

from sessionrec.commands import (
    analyze,
    datasets,
    demo,
    evaluate,
    export,
    models,
    recommend,
    reproduce,
    results,
    serve,
    status,
    train,
    tune,
    update,
)
from sessionrec.errors import SessionrecError
from sessionrec.training.distributed import env_world

Command = Callable[..., None]

# Every command, by the name a user types, in the order `sessionrec --help` lists them.
COMMANDS: dict[str, Command] = {
    "train": train.train,
    "status": status.status,
    "evaluate": evaluate.evaluate,
    "recommend": recommend.recommend,
    "update": update.update,
    "demo": demo.demo,
    "reproduce": reproduce.reproduce,
    "serve": serve.serve,
    "export": export.export,
    "tune": tune.tune,
}
GROUPS: dict[str, tuple[str, dict[str, Command]]] = {
    "datasets": (
        "List, inspect and prepare datasets.",
        {
            "list": datasets.list_datasets,
            "stats": datasets.stats,
            "prepare": datasets.prepare,
            "export": datasets.export,
        },
    ),
    "models": ("The registered models.", {"list": models.list_models, "show": models.show}),
    "analyze": (
        "Analyses of trained runs.",
        {
            "importance": analyze.importance,
            "local-invariance": analyze.local_invariance,
            "curve": analyze.curve,
            "long-tail": analyze.long_tail,
        },
    ),
    "results": (
        "The results registry (results/registry/).",
        {"add": results.add, "table": results.table},
    ),
}


def build_app() -> typer.Typer:
    """The Typer app with every command of COMMANDS and GROUPS."""
    app = typer.Typer(
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        help="Session-based recommendation: data, training, evaluation, recommendation.",
    )
    for name, command in COMMANDS.items():
        app.command(name)(command)
    for group_name, (help_text, commands) in GROUPS.items():
        group = typer.Typer(no_args_is_help=True, help=help_text)
        for name, command in commands.items():
            group.command(name)(command)
        app.add_typer(group, name=group_name)
    return app


app = build_app()


def _exit(code: int) -> NoReturn:
    """Exit with `code`. A torchrun worker skips the interpreter's teardown: DDP keeps the gloo
    process group and its C++ threads alive past `destroy_process_group`, and tearing them down
    during finalization, while the other rank exits, can abort the process (docs/distributed.md)."""
    if env_world().enabled:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main() -> None:
    """Entry point: run the app; turn known errors into one line on stderr."""
    debug = bool(os.environ.get("SESSIONREC_DEBUG"))
    # under torchrun every rank reports its own failure; name the rank unless it is rank 0
    where = f" (rank {os.environ['RANK']})" if os.environ.get("RANK", "0") != "0" else ""
    try:
        rv = app(standalone_mode=False)
    except KeyboardInterrupt:
        print("sessionrec: interrupted (a training run continues with --resume)", file=sys.stderr)
        _exit(130)
    except (SessionrecError, FloatingPointError) as e:
        if debug:
            raise
        print(f"sessionrec: error{where}: {e}", file=sys.stderr)
        _exit(1)
    except Exception as e:
        if hasattr(e, "format_message") and hasattr(
            e, "exit_code"
        ):  # a usage error (Typer's click)
            if e.format_message():  # empty when the help text was shown instead
                print(f"sessionrec: error: {e.format_message()} (see --help)", file=sys.stderr)
            _exit(e.exit_code)
        if type(e).__name__ == "Abort":  # click's Ctrl-C
            print("sessionrec: interrupted", file=sys.stderr)
            _exit(130)
        if debug:
            raise
        print(
            f"sessionrec: internal error{where}: {type(e).__name__}: {e} "
            "(set SESSIONREC_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        _exit(1)
    _exit(rv if isinstance(rv, int) else 0)
