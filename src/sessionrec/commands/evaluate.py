"""`sessionrec evaluate RUN_DIR`: a saved run evaluated again, beside its recorded metrics."""

from __future__ import annotations

from sessionrec.commands.options import Progress, RunDirArg
from sessionrec.commands.output import metrics_table, out
from sessionrec.errors import RunError


def evaluate(run_dir: RunDirArg, progress: Progress = True) -> None:
    """Evaluate a saved run again on its test set and compare with its recorded metrics."""
    import json

    from sessionrec.progress import shown
    from sessionrec.rundir import METRICS_FILE
    from sessionrec.training.run import evaluate_run

    with shown(progress):
        test = evaluate_run(run_dir)["test"]
    rows = {"now": test}
    recorded_path = run_dir / METRICS_FILE
    if recorded_path.exists():
        try:
            recorded = json.loads(recorded_path.read_text())
            recorded_test = recorded.get("test")  # absent when tuning skipped the test split
        except (ValueError, AttributeError) as e:
            raise RunError(f"{recorded_path}: corrupted ({type(e).__name__}: {e})") from None
        if recorded_test is not None and not isinstance(recorded_test, dict):
            raise RunError(f"{recorded_path}: corrupted ('test' is not an object)")
        if recorded_test is not None:
            rows = {"recorded": recorded_test, "now": test}
    out.print(metrics_table(f"{run_dir} (test, %)", rows))
