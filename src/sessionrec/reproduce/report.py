"""Outputs of a reproduction: `table.md` (laid out like the paper), `results.json`, PNGs.

Every table starts with the budget line, so a reduced run is never mistaken for the paper's
protocol. Cells read `ours / paper (ours − paper)` in percent; with several seeds, ours is
`mean ± std`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sessionrec.io import atomic_write_json, atomic_write_text
from sessionrec.reproduce.experiments import (
    IMPORTANCE,
    INVARIANCE,
    SWEEP,
    SWEEP_SYMBOLS,
    get_experiment,
)

TEST_NAMES = {"wilcoxon": "Wilcoxon signed-rank test", "ttest": "paired t-test"}


def metric_name(metric: str) -> str:
    return metric.upper()


def cell(row: dict[str, Any], metric: str, seeds: int) -> str:
    """`ours ± std / paper (diff)` in percent; parts that do not exist are left out."""
    ours = row["ours_pct"][metric]
    text = f"{ours:.2f}" + (f" ± {row['std_pct'][metric]:.2f}" if seeds > 1 else "")
    paper = row["paper_pct"].get(metric)
    if paper is not None:
        text += f" / {paper:.2f} ({row['diff_pct'][metric]:+.2f})"
    return text


def p_cell(row: dict[str, Any], reference: str | None) -> str:
    if row["label"] == reference:
        return "ref."
    p = row["p_value"]
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _datasets(results: dict[str, Any]) -> list[str]:
    return [d["name"] for d in results["datasets"]]


def _by_label(results: dict[str, Any]) -> tuple[list[str], dict[tuple[str, str], dict[str, Any]]]:
    labels: list[str] = []
    rows = {}
    for row in results["rows"]:
        if row["label"] not in labels:
            labels.append(row["label"])
        rows[(row["label"], row["dataset"])] = row
    return labels, rows


def header(results: dict[str, Any]) -> list[str]:
    """Title, budget line, command, data and how to read the cells."""
    budget = results["budget"]
    lines = [
        f"# {results['experiment']}: {results['title']} ({results['source']})",
        "",
        f"**{results['budget_label']}**",
        "",
    ]
    if results.get("command"):
        lines += [f"Command: `{results['command']}`", ""]
    data = "; ".join(
        f"{d['name']}: {d['train_sessions']:,} training sessions, {d['fit_examples']:,} fitting "
        f"and {d['valid_examples']:,} validation examples, {d['test_cases']:,} test cases"
        for d in results["datasets"]
    )
    lines += [f"Data: {data}.", ""]
    lines.append(
        "Full ranking over all items, test split, percent; model selection and early "
        "stopping on the validation split (last 10% of training examples) only."
    )
    if results["kind"] != IMPORTANCE:
        lines.append(
            "Cells: ours"
            + (f" (mean ± std over {budget['seeds']} seeds)" if budget["seeds"] > 1 else "")
            + " / paper (ours − paper); the paper's number is left out where it prints none."
        )
    return lines + [""]


def table_markdown(results: dict[str, Any]) -> str:
    """The whole `table.md` for any kind of experiment."""
    lines = header(results)
    kind = results["kind"]
    if kind == SWEEP:
        lines += _sweep_table(results)
    elif kind == IMPORTANCE:
        lines += _importance_table(results)
    else:
        lines += _main_table(results)
        if kind == INVARIANCE:
            lines += _invariance_tables(results)
    lines += _runs_table(results)
    for failed in results.get("failed", []):
        lines.append(f"- **FAILED**: {failed['label']} on {failed['dataset']}: {failed['error']}")
    return "\n".join(lines) + "\n"


def _main_table(results: dict[str, Any]) -> list[str]:
    """Rows = models, columns = dataset × metric (+ p-value per dataset), as the paper."""
    metrics, datasets = results["metrics"], _datasets(results)
    sig = results["significance"]
    labels, rows = _by_label(results)
    seeds = results["budget"]["seeds"]
    cols = ["Model"]
    for d in datasets:
        cols += [f"{d} {metric_name(m)}" for m in metrics] + [f"{d} p"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for label in labels:
        cells = [label]
        for d in datasets:
            row = rows.get((label, d))
            if row is None:
                cells += ["–"] * (len(metrics) + 1)
                continue
            cells += [cell(row, m, seeds) for m in metrics] + [p_cell(row, sig["reference"])]
        lines.append("| " + " | ".join(cells) + " |")
    test = TEST_NAMES.get(sig["test"], sig["test"])
    lines += [
        "",
        f"p: two-sided {test} on per-case {metric_name(sig['metric'])} against "
        f"{sig['reference']} (ref.), per-case values averaged over seeds; no correction for "
        "multiple comparisons.",
        "",
    ]
    return lines


def _sweep_table(results: dict[str, Any]) -> list[str]:
    """Fig. 3 as a table: one block per parameter, one row per value."""
    experiment = get_experiment(results["experiment"])
    metrics, datasets = results["metrics"], _datasets(results)
    labels, rows = _by_label(results)
    seeds = results["budget"]["seeds"]
    cols = ["parameter", "value"] + [f"{d} {metric_name(m)}" for d in datasets for m in metrics]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for label in labels:
        name, _, value = label.partition("=")
        cells = [SWEEP_SYMBOLS.get(name, name), value]
        for d in datasets:
            row = rows.get((label, d))
            cells += [cell(row, m, seeds) if row else "–" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    fixed = ", ".join(
        f"{SWEEP_SYMBOLS.get(k, k)} = {v[0]}…{v[-1]}" for k, v in experiment.sweep.items()
    )
    return lines + [
        "",
        f"Swept: {fixed}; the paper prints this study as a figure only (no numbers to compare).",
        "",
    ]


def _importance_table(results: dict[str, Any]) -> list[str]:
    """Fig. 4: accuracy of the one-layer model and the summed weights of each side."""
    lines = [
        "| dataset | HR@20 | MRR@20 | weight at k = −10..−1 | weight at k = 1..10 | uniform |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        a = results["analysis"].get(row["dataset"], {})
        neg = sum(
            m for k, m in zip(a.get("distances", []), a.get("mean", []), strict=True) if k < 0
        )
        pos = sum(
            m for k, m in zip(a.get("distances", []), a.get("mean", []), strict=True) if k > 0
        )
        ours = row["ours_pct"]
        lines.append(
            f"| {row['dataset']} | {ours['hr@20']:.2f} | {ours['mrr@20']:.2f} "
            f"| {neg:.4f} | {pos:.4f} | {a.get('uniform', float('nan')):.4f} |"
        )
    return lines + [
        "",
        "The paper reports, from its plots, larger weights at positive than at negative "
        "distances on Tmall and Diginetica and similar weights on RetailRocket.",
        "",
    ]


def _invariance_tables(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for dataset, a in results["analysis"].items():
        labels = list(a["models"])
        lines += [
            f"Local invariance on {dataset} (β = {a['beta']}, top {a['k']}): share of pairs (%) "
            "with both next items in the top k.",
            "",
            "| θ | pairs | " + " | ".join(labels) + " |",
            "|" + "---|" * (len(labels) + 2),
        ]
        for i, theta in enumerate(a["theta"]):
            shares = [a["models"][m]["share"][i] for m in labels]
            shown = ["–" if s is None else f"{100 * s:.2f}" for s in shares]
            lines.append(f"| {theta:g} | {a['pairs'][i]} | " + " | ".join(shown) + " |")
        lines.append("")
    return lines


def _runs_table(results: dict[str, Any]) -> list[str]:
    """How each run ended: epochs, the selected epoch, and whether the budget cut it short."""
    lines = [
        "Runs (per seed): epochs run / selected epoch; 'budget' = stopped by --max-minutes.",
        "",
        "| model | dataset | seed | epochs | best epoch | ended by | fit s | run directory |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        for r in row["runs"]:
            ended = (
                "budget"
                if r.get("out_of_budget")
                else "early stop"
                if r.get("stopped_early")
                else "epochs"
                if r.get("epochs_run")
                else "fit"
            )
            cells = [
                row["label"],
                row["dataset"],
                str(r["seed"]),
                str(r.get("epochs_run") or "–"),
                str(r.get("best_epoch") or "–"),
                ended,
                str(r.get("fit_seconds")),
                f"`{r['run_dir']}`",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def write_outputs(results: dict[str, Any], out: Path) -> list[Path]:
    """results.json, table.md and the PNG figures; returns the paths written."""
    from sessionrec.reproduce import figures

    out.mkdir(parents=True, exist_ok=True)
    pngs = figures.draw(results, out)
    results["figures"] = [p.name for p in pngs]
    written = [
        atomic_write_json(out / "results.json", results),
        atomic_write_text(out / "table.md", table_markdown(results)),
    ]
    return written + pngs
