"""The results registry: one JSON per finished run, and the tables of docs/results.md from it.

`sessionrec results add RUN_DIR --protocol P` copies what a run directory knows (metrics,
epochs, time, provenance) into `results/registry/`; `sessionrec results table` regenerates
the registry section of docs/results.md, with the paper's number and the difference in each
cell. Protocols: `full` (all training sessions, early stopping on validation, no time
limit), `paper` (epochs selected on validation, then refit on all training examples),
`reduced` (any cut budget), or a recipe's name.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sessionrec.errors import ConfigError, RunError
from sessionrec.io import atomic_write_json
from sessionrec.rundir import (
    LOG_FILE,
    REFIT_DIR,
    SELECT_DIR,
    read_config,
    read_epochs,
    read_json_object,
    read_metrics,
)
from sessionrec.training.status import stop_reason

REGISTRY_DIR = Path("results/registry")
RESULTS_DOC = Path("docs/results.md")
BEGIN, END = "<!-- registry:begin -->", "<!-- registry:end -->"
REQUIRED = ("model", "dataset", "protocol", "test", "valid", "command")
PROTOCOL = re.compile(r"^[a-z][a-z0-9-]*$")
# Where a model's published number comes from, first match wins (FOCOL's Table 2 for the
# models it lists, LINet's tables for the others and LINet's ablations).
PAPER_TABLES = ("focol-table2", "linet-table1", "linet-table2", "focol-table3", "focol-table4")
METRICS = ("hr@20", "mrr@20", "hr@10", "mrr@10")
# The papers' ablation tables and the full model their variants are measured against.
ABLATIONS = {"linet-table2": "linet", "focol-table3": "focol", "focol-table4": "focol"}
COMPLETE = ("full", "paper")  # protocols an ablation compares like with like


def _cut_epochs(epochs: list[dict[str, Any]]) -> list[int]:
    """Epochs a time budget cut: one it ended part-way (`partial`, or fewer steps than the
    others in logs before that flag), or the last when the budget ended the run.

    An earlier epoch flagged `out_of_budget` that ran all its steps was followed by a resume
    with more time (a continuation identical to a run that never stopped), so it does not count.
    """
    most = max((r.get("steps_done") or 0 for r in epochs), default=0)
    partial = [
        r["epoch"]
        for r in epochs
        if r.get("partial")
        or (r.get("out_of_budget") and (r.get("steps") or most) > (r.get("steps_done") or 0))
    ]
    last = epochs[-1] if epochs else {}
    ended = last.get("out_of_budget") and not last.get("stopped_early")
    return sorted(set(partial) | ({last["epoch"]} if ended else set()))


def entry_from_run(
    run_dir: Path, protocol: str, note: str = "", command: str = ""
) -> dict[str, Any]:
    """A registry entry for a finished run directory (`command` for runs that lack one)."""
    if not PROTOCOL.match(protocol):
        raise ConfigError(f"protocol must be full, paper, reduced or a recipe name: {protocol!r}")
    config, metrics = read_config(run_dir), read_metrics(run_dir)
    # a paper-protocol run: the curve is the selection run's, inside it or the one it refit from
    selection = Path(config.get("select_from", run_dir / SELECT_DIR))
    epochs = read_epochs(selection if (selection / LOG_FILE).exists() else run_dir)
    origin = config.get("provenance", {})
    last = epochs[-1] if epochs else {}
    if protocol in ("full", "paper"):
        for phase in (run_dir, selection, run_dir / REFIT_DIR):
            cut = _cut_epochs(read_epochs(phase))
            if cut:
                raise RunError(
                    f"{phase}: its time budget ended training in epoch {cut[0]}, so it is no "
                    f"{protocol}-protocol run: register it as reduced (--resume with a larger "
                    "max_minutes first, where it can go on)"
                )
    stopped = stop_reason(last, config) if epochs else "fit"
    if protocol == "full" and stopped == "time budget":
        raise RunError(
            f"{run_dir}: training ended after epoch {last.get('epoch')} of "
            f"{config['train']['epochs']} without early stopping (a time budget, here or at a "
            "resume), so it is no full-protocol run: register it as reduced"
        )
    return {
        "model": config["model"],
        "dataset": metrics.get("dataset", config["dataset"].get("dataset")),
        "protocol": protocol,
        "test": metrics["test"],
        "valid": metrics["valid"],
        "epochs": last.get("epoch"),
        "selected_epoch": metrics.get("best_epoch"),
        "stopped": stopped,
        "valid_curve": [
            {"epoch": r["epoch"], "lr": r.get("lr"), **r.get("valid", {})} for r in epochs
        ],
        **_test_curve(epochs),
        "fit_seconds": metrics.get("fit_seconds"),
        "eval_seconds": metrics.get("eval_seconds"),
        "threads": config["train"].get("num_threads") or origin.get("threads"),
        "cpu": origin.get("cpu"),
        "cpu_capability": origin.get("cpu_capability"),
        "device": origin.get("device"),
        "commit": origin.get("commit"),
        "data_sha256": origin.get("data_sha256", {}),
        "command": origin.get("command") or command,
        "resumes": [r.get("command") for r in config.get("resumes", [])],  # each later sitting
        "params": config["params"],
        "train": config["train"],
        "recorded": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "note": note,
        "run": _run_name(run_dir),
    }


def _run_name(run_dir: Path) -> str:
    """The run directory's name; a paper-protocol phase's is `RUN/select` or `RUN/refit`."""
    path = run_dir.resolve()
    return f"{path.parent.name}/{path.name}" if path.name in (SELECT_DIR, REFIT_DIR) else path.name


def _test_curve(epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """`test_curve` for a run trained with `test_curve=true` (test after every epoch), else {}."""
    curve = [
        {"epoch": r["epoch"], **r["test"]} for r in epochs if r.get("test") and not r.get("partial")
    ]
    return {"test_curve": curve} if curve else {}


def best_on_test(entry: dict[str, Any]) -> str:
    """The line that sets the selected epoch's test figures beside what the authors' scripts
    print: each metric's best value over the epochs' test evaluations, taken separately."""
    curve = entry.get("test_curve") or []
    if not curve:
        return ""

    def pct(value: float | None) -> str:
        return _cell(value, None)

    points = ", ".join(f"{pct(r.get('hr@20'))}/{pct(r.get('mrr@20'))}" for r in curve)
    best = {m: max(curve, key=lambda r: r.get(m, -1.0)) for m in ("hr@20", "mrr@20")}
    return (
        f"- {entry['model']} (`{entry.get('run', '')}`), test after every epoch (a diagnostic, "
        f"never used for selection): HR@20/MRR@20 {points}. The authors' scripts would print "
        f"{pct(best['hr@20']['hr@20'])} / {pct(best['mrr@20']['mrr@20'])} (best of each over "
        f"the epochs: {best['hr@20']['epoch']} and {best['mrr@20']['epoch']}) where this entry "
        f"reports {pct(entry['test'].get('hr@20'))} / "
        f"{pct(entry['test'].get('mrr@20'))}."
    )


def _commands(entry: dict[str, Any]) -> str:
    """The command cell: the command that started the run, then any that resumed it."""
    first = f"`{entry['command']}`"
    later = [c for c in entry.get("resumes") or [] if c]
    return first + "".join(f"; resumed: `{c}`" for c in later)


def entry_name(entry: dict[str, Any]) -> str:
    """File name: dataset, model, protocol and the run directory's name (unique per run)."""
    run = re.sub(r"[^A-Za-z0-9_.-]+", "_", entry.get("run", "run"))
    return f"{entry['dataset']}-{entry['model']}-{entry['protocol']}-{run}.json"


def add(
    run_dir: Path,
    protocol: str,
    registry: Path = REGISTRY_DIR,
    note: str = "",
    replace: bool = False,
    command: str = "",
) -> Path:
    """Write the entry of `run_dir` into `registry`. A run has one entry: an existing one,
    under any protocol (a REDUCED entry of a run since resumed to its end), needs `replace`,
    which removes it."""
    entry = entry_from_run(run_dir, protocol, note, command)
    if not entry["command"]:
        raise RunError(f"{run_dir}: records no command (a run from before provenance): --command")
    path = registry / entry_name(entry)
    same_run = _entries_of_run(registry, entry)
    if same_run and not replace:
        raise RunError(f"{same_run[0]}: already registered (--replace to overwrite)")
    registry.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, entry)
    for old in same_run:
        if old != path:
            old.unlink()
    return path


def _entries_of_run(registry: Path, entry: dict[str, Any]) -> list[Path]:
    """The registry's files for the same run (dataset, model and run directory name)."""

    def key(e: dict[str, Any]) -> tuple[Any, ...]:
        return e.get("dataset"), e.get("model"), e.get("run")

    return [path for path, other in _files(registry) if key(other) == key(entry)]


def _files(registry: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Each registry file with its entry, in file-name order ({} when it vanished since the
    listing)."""
    return [(path, read_json_object(path) or {}) for path in sorted(registry.glob("*.json"))]


def load(registry: Path = REGISTRY_DIR) -> list[dict[str, Any]]:
    """Every entry, checked, in file-name order."""
    entries = []
    for path, entry in _files(registry):
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            raise RunError(f"{path}: missing key '{missing[0]}'")
        entries.append(entry)
    return entries


def paper_number(model: str, dataset: str, metric: str) -> tuple[float | None, str]:
    """The published value (percent) for a model, dataset and metric, and its table."""
    from sessionrec.reproduce.experiments import EXPERIMENTS

    for name in PAPER_TABLES:
        experiment = EXPERIMENTS[name]
        for row in experiment.rows:
            if row.model == model:
                value = experiment.paper_value(row.label, dataset, metric)
                if value is not None:
                    return value, experiment.source
    return None, ""


TOLERANCE = {"hr@20": 1.0, "mrr@20": 0.5}  # points below the paper that still reproduce it


def paper_rows() -> dict[str, list[tuple[str, str]]]:
    """Per dataset, (model, table) for every model a paper table prints a number for."""
    from sessionrec.reproduce.experiments import EXPERIMENTS

    rows: dict[str, list[tuple[str, str]]] = {}
    for name in PAPER_TABLES:
        experiment = EXPERIMENTS[name]
        for dataset in _paper_datasets(experiment):
            listed = rows.setdefault(dataset, [])
            for row in experiment.rows:
                known = {m for m, _ in listed}
                if row.model not in known and paper_number(row.model, dataset, "hr@20")[0]:
                    listed.append((row.model, paper_number(row.model, dataset, "hr@20")[1]))
    return rows


def _paper_datasets(experiment: Any) -> list[str]:
    """The datasets a paper table prints numbers for, sorted."""
    return sorted({d for values in experiment.paper.values() for d in values})


def optional_datasets() -> set[str]:
    """Datasets a paper table lists that the shared benchmarks do not include."""
    from sessionrec.reproduce.experiments import EXPERIMENTS

    return {d for name in PAPER_TABLES for d in EXPERIMENTS[name].optional_datasets}


def _verdict(entry: dict[str, Any], dataset: str) -> tuple[bool, float, float]:
    """Whether `entry` is within TOLERANCE of (or above) the paper; its two differences."""
    diffs = [
        100 * entry["test"].get(m, float("nan")) - (paper_number(entry["model"], dataset, m)[0])
        for m in TOLERANCE
    ]
    within = all(d >= -t for d, t in zip(diffs, TOLERANCE.values(), strict=True))
    return within, diffs[0], diffs[1]


def status(entries: list[dict[str, Any]]) -> str:
    """Per paper row: its best registered run and whether it reproduces the paper's number."""
    lines = [
        "| dataset | model | paper HR@20 / MRR@20 | best run | protocol | ours | difference "
        "| reproduced? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    optional = optional_datasets()
    for dataset, rows in sorted(paper_rows().items()):
        for model, source in rows:
            paper = [paper_number(model, dataset, m)[0] for m in TOLERANCE]
            cand = [e for e in entries if e["model"] == model and e["dataset"] == dataset]
            head = f"| {dataset} | {model} | {paper[0]:.2f} / {paper[1]:.2f} ({source}) |"
            if not cand:
                why = "no run yet" if dataset not in optional else "no run yet (optional data)"
                lines.append(f"{head} – | – | – | – | {why} |")
                continue
            best = max(cand, key=lambda e: _rank(e, dataset))
            within, d_hr, d_mrr = _verdict(best, dataset)
            ours = f"{100 * best['test']['hr@20']:.2f} / {100 * best['test']['mrr@20']:.2f}"
            reduced = best["protocol"] == "reduced"
            verdict = ("yes" if not reduced else "yes, on a REDUCED run") if within else "not yet"
            lines.append(
                f"{head} `{best.get('run', '')}` | {'REDUCED' if reduced else best['protocol']} "
                f"| {ours} | {d_hr:+.2f} / {d_mrr:+.2f} | {verdict} |"
            )
    verdicts = [line.rsplit("|", 2)[1].strip() for line in lines[2:]]
    total = (
        f"{verdicts.count('yes')} of {len(verdicts)} rows reproduced, "
        f"{verdicts.count('yes, on a REDUCED run')} more on REDUCED runs, "
        f"{verdicts.count('not yet')} short, {verdicts.count('no run yet')} without a run"
    )
    if unrunnable := verdicts.count("no run yet (optional data)"):
        total += (
            f" and {unrunnable} on optional data ({', '.join(sorted(optional))}: not among the"
            " shared benchmarks; docs/reproduce.md says how to prepare it)"
        )
    total += "."
    return "\n".join(lines) + "\n\n" + total + "\n"


def _pair(values: list[float | None]) -> str:
    return " / ".join("–" if v is None else f"{v:.2f}" for v in values)


def _delta(values: list[float | None], base: list[float | None]) -> str:
    if any(v is None for v in values + base):
        return "–"
    return " / ".join(f"{v - b:+.2f}" for v, b in zip(values, base, strict=True))


def ablations(entries: list[dict[str, Any]]) -> str:
    """The papers' ablation tables redrawn from complete runs: each variant against the full model.

    One table per paper table, dataset and complete protocol in which the full model and at
    least one variant have a run (the best by HR@20 of each), so that a difference never
    sets a refit against a validation-selected run.
    """
    from sessionrec.reproduce.experiments import EXPERIMENTS

    blocks = []
    for name, base in ABLATIONS.items():
        experiment = EXPERIMENTS[name]
        for dataset in _paper_datasets(experiment):
            for protocol in COMPLETE:
                best = {}
                for row in experiment.rows:
                    key = (row.model, dataset, protocol)
                    cand = [e for e in entries if (e["model"], e["dataset"], e["protocol"]) == key]
                    if cand:
                        best[row.model] = max(cand, key=lambda e: e["test"].get("hr@20", 0.0))
                if base in best and len(best) > 1:
                    blocks += _ablation_table(experiment, base, dataset, protocol, best)
    if not blocks:
        return ""
    intro = (
        "### The papers' ablations, redrawn\n\n"
        "Each ablation table with complete runs (protocol full or paper, compared only within "
        "one protocol): every variant's HR@20 / MRR@20 and its difference to the full model, "
        "the paper's beside ours, in percent points.\n"
    )
    return intro + "\n" + "\n".join(blocks)


def _ablation_table(
    experiment: Any, base: str, dataset: str, protocol: str, best: dict[str, dict[str, Any]]
) -> list[str]:
    """Markdown lines of one redrawn ablation table; `best` holds each model's run."""
    lines = [
        f"#### {experiment.source}: {dataset}, protocol {protocol}",
        "",
        f"| variant | paper | paper, to {base} | ours | ours, to {base} | run |",
        "|---|---|---|---|---|---|",
    ]
    label = next(row.label for row in experiment.rows if row.model == base)
    paper_base = [experiment.paper_value(label, dataset, m) for m in TOLERANCE]
    ours_base = [100 * best[base]["test"][m] for m in TOLERANCE]
    for row in experiment.rows:
        paper = [experiment.paper_value(row.label, dataset, m) for m in TOLERANCE]
        entry = best.get(row.model)
        ours = [100 * entry["test"][m] for m in TOLERANCE] if entry else [None, None]
        same = row.model == base
        run = f"`{entry.get('run', '')}`" if entry else f"no {protocol} run yet"
        paper_delta = "–" if same else _delta(paper, paper_base)
        ours_delta = "–" if same or not entry else _delta(ours, ours_base)
        lines.append(
            f"| {row.model} | {_pair(paper)} | {paper_delta} | {_pair(ours)} | {ours_delta} "
            f"| {run} |"
        )
    return [*lines, ""]


def _rank(entry: dict[str, Any], dataset: str) -> tuple[bool, bool, float]:
    """Within tolerance first, then a complete protocol over REDUCED, then HR@20."""
    within = _verdict(entry, dataset)[0]
    return within, entry["protocol"] != "reduced", entry["test"].get("hr@20", 0.0)


def _cell(ours: float | None, paper: float | None) -> str:
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        return "–"
    text = f"{100 * ours:.2f}"
    if paper is None:
        return text
    return f"{text} ({paper:.2f}, {100 * ours - paper:+.2f})"


def render(entries: list[dict[str, Any]]) -> str:
    """Markdown tables, one per dataset: each cell `ours (paper, difference)` in percent."""
    if not entries:
        return "No runs registered yet.\n"
    lines = [
        "### Does it reproduce the papers?",
        "",
        "Each row of the papers' tables with its best registered run: reproduced when HR@20 is "
        f"at most {TOLERANCE['hr@20']:g} and MRR@20 at most {TOLERANCE['mrr@20']:g} points "
        "below the paper's number, or above it. Ours and differences in percent points.",
        "",
        status(entries),
    ]
    if table := ablations(entries):
        lines += [table]
    for dataset in sorted({e["dataset"] for e in entries}):
        rows = sorted(
            (e for e in entries if e["dataset"] == dataset),
            key=lambda e: (e["protocol"] != "full", e["model"], entry_name(e)),
        )
        lines += [
            f"### {dataset}",
            "",
            "| model | protocol | "
            + " | ".join(m.upper() for m in METRICS)
            + " | epochs (selected) | train min | command |",
            "|---|---|" + "---|" * len(METRICS) + "---|---|---|",
        ]
        for e in rows:
            cells = [
                _cell(e["test"].get(m), paper_number(e["model"], dataset, m)[0]) for m in METRICS
            ]
            label = e["protocol"] if e["protocol"] != "reduced" else "REDUCED"
            epochs = f"{e.get('epochs')} ({e.get('selected_epoch')})" if e.get("epochs") else "–"
            minutes = f"{e['fit_seconds'] / 60:.0f}" if e.get("fit_seconds") else "–"
            minutes += " (GPU)" if str(e.get("device") or "").startswith("cuda") else ""
            lines.append(
                f"| {e['model']} | {label} | "
                + " | ".join(cells)
                + f" | {epochs} | {minutes} | {_commands(e)} |"
            )
        sources = sorted({paper_number(e["model"], dataset, "hr@20")[1] for e in rows} - {""})
        lines += ["", f"Paper numbers: {'; '.join(sources) or 'none published'}.", ""]
        notes = [
            f"- {e['model']} (`{e.get('run', '')}`): {e['note']}" for e in rows if e.get("note")
        ]
        notes += [best_on_test(e) for e in rows if e.get("test_curve")]
        lines += [*notes, ""] if notes else []
    return "\n".join(lines)


def update_doc(doc: Path = RESULTS_DOC, registry: Path = REGISTRY_DIR, check: bool = False) -> bool:
    """Regenerate the registry section of `doc`; with `check`, only say whether it is stale."""
    text = doc.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise RunError(f"{doc}: needs exactly one {BEGIN} ... {END} section")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    new = f"{head}{BEGIN}\n{render(load(registry))}{END}{tail}"
    if new == text:
        return False
    if not check:
        doc.write_text(new)
    return True
