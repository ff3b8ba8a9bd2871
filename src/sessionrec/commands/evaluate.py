"""`sessionrec evaluate RUN_DIR`: a saved run evaluated again, beside its recorded metrics."""

from __future__ import annotations

from sessionrec.commands.options import Progress, RunDirArg
from sessionrec.commands.output import metrics_table, out


def evaluate(run_dir: RunDirArg, progress: Progress = True) -> None:
    """Evaluate a saved run again on its test set and compare with its recorded metrics."""
    from sessionrec.progress import shown
    from sessionrec.rundir import METRICS_FILE, read_metrics
    from sessionrec.training.run import evaluate_run

    with shown(progress):
        test = evaluate_run(run_dir)["test"]
    rows = {"now": test}
    if (run_dir / METRICS_FILE).exists():
        # no test metrics when tuning skipped the test split
        recorded_test = read_metrics(run_dir, required=()).get("test")
        if recorded_test is not None:
            rows = {"recorded": recorded_test, "now": test}
    out.print(metrics_table(f"{run_dir} (test, %)", rows))
