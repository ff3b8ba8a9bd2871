"""Declarative specs of the papers' tables and figures, with the papers' numbers (percent).

Each experiment lists its rows (a registered model plus the hyper-parameters that define the
row), its default datasets, its metrics and, where the paper prints them, the paper's values.
Figures 3 (FOCOL) and 1 (LINet) are plots without printed values, so they carry none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sessionrec.errors import ConfigError

TABLE, SWEEP, IMPORTANCE, INVARIANCE = "table", "sweep", "importance", "invariance"
FOCOL_DATASETS = ("tmall", "retailrocket", "diginetica")
LINET_DATASETS = ("yoochoose1_64", "yoochoose1_4", "diginetica")
AT10_20 = ("hr@10", "mrr@10", "hr@20", "mrr@20")
AT20 = ("hr@20", "mrr@20")


@dataclass(frozen=True)
class Row:
    """One row of a table: a registered model and the hyper-parameters that define the row.

    `params` win over `--set`, so an ablation stays an ablation whatever the user overrides.
    """

    label: str
    model: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    """A table or figure of a paper: what to train, on what, and what the paper reports."""

    name: str
    source: str
    title: str
    kind: str
    rows: tuple[Row, ...]
    datasets: tuple[str, ...]
    metrics: tuple[str, ...]
    paper: Mapping[str, Mapping[str, Mapping[str, float]]] = field(default_factory=dict)
    reference: str | None = None  # the row every other row is tested against
    optional_datasets: tuple[str, ...] = ()  # defaults only when their data exist
    sweep: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def paper_value(self, label: str, dataset: str, metric: str) -> float | None:
        """The paper's number (percent) for a row, dataset and metric, if it prints one."""
        return self.paper.get(label, {}).get(dataset, {}).get(metric)

    def select_rows(self, names: Sequence[str] | None) -> tuple[Row, ...]:
        """The rows whose label or model is in `names` (all when None), in table order."""
        if not names:
            return self.rows
        wanted = {n.strip().lower() for n in names if n.strip()}
        known = {r.label.lower() for r in self.rows} | {r.model for r in self.rows}
        unknown = sorted(wanted - known)
        if unknown:
            raise ConfigError(
                f"'{unknown[0]}' is not a row of {self.name} "
                f"(rows: {', '.join(r.model for r in self.rows)})"
            )
        return tuple(r for r in self.rows if r.label.lower() in wanted or r.model in wanted)


def parse_paper_table(
    text: str, datasets: Sequence[str], metrics: Sequence[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """Rows 'LABEL v1 v2 ...' (values dataset-major, as printed) -> label -> dataset -> metric."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for line in text.strip().splitlines():
        label, *values = line.split()
        if len(values) != len(datasets) * len(metrics):
            raise ValueError(f"paper table row '{label}': {len(values)} values")
        it = iter(float(v) for v in values)
        table[label] = {d: {m: next(it) for m in metrics} for d in datasets}
    return table


# FOCOL paper, Table 2: HR@10 MRR@10 HR@20 MRR@20 on Tmall, RetailRocket, Diginetica.
FOCOL_TABLE2 = """
ItemKNN  7.34  3.41  9.47  3.56 23.83 11.20 29.27 11.58 25.07 10.77 35.75 11.57
FPMC    13.10  7.12 16.06  7.32 25.99 13.38 32.37 13.82 15.43  6.20 22.14  6.66
GRU4Rec  9.47  5.78 10.93  5.89 38.35 23.27 44.01 23.67 17.93  7.73 30.79  8.22
NARM    19.17 10.42 23.30 10.70 42.07 24.88 50.22 24.59 35.44 15.13 48.32 16.00
STAMP   22.63 13.12 26.47 13.36 42.95 24.61 50.96 25.17 33.98 14.26 46.64 15.13
SR-GNN  23.41 13.45 27.57 13.72 43.21 26.07 50.32 26.57 38.42 16.89 51.26 17.78
GCE-GNN 28.01 15.08 33.42 15.42 47.36 26.97 55.57 27.54 41.16 18.15 54.22 19.04
DHCN    26.22 14.60 31.42 15.05 46.15 26.85 53.66 27.30 40.21 17.59 53.66 18.51
FOCOL   28.51 15.73 33.71 16.04 49.80 30.18 57.83 30.96 41.23 18.20 54.08 19.11
"""
# FOCOL paper, Tables 3 and 4: HR@20 MRR@20 on Tmall, RetailRocket, Diginetica.
FOCOL_TABLE3 = """
FOCOL-NG 31.32 15.01 54.67 30.48 49.76 17.93
FOCOL-SG 32.04 15.69 55.23 30.60 52.88 18.43
FOCOL    33.71 16.04 57.83 30.96 54.08 19.11
"""
FOCOL_TABLE4 = """
FOCOL-NCL 32.44 15.29 55.76 28.03 53.10 18.35
FOCOL-NC  33.51 15.70 57.35 30.65 53.61 18.72
FOCOL-ND  33.57 15.79 57.46 30.72 53.74 18.81
FOCOL-NI  33.65 15.97 57.62 30.88 53.95 19.02
FOCOL-NId 33.22 15.63 56.95 30.54 53.46 18.62
FOCOL     33.71 16.04 57.83 30.96 54.08 19.11
"""
# LINet paper, Table I: Hit@20 MRR@20 on YooChoose 1/64, YooChoose 1/4, Diginetica.
LINET_TABLE1 = """
Item-KNN  51.60 21.81 52.31 21.70 35.75 11.57
BPR-MF    31.31 12.08  3.40  1.57  5.24  1.98
FPMC      45.62 15.01 51.86 17.50 26.53  6.95
GRU4Rec   60.64 22.89 59.53 22.60 40.24 14.37
NARM      68.32 28.76 69.73 29.23 49.70 16.17
STAMP     68.74 29.67 70.44 30.00 48.66 15.55
RepeatNet 69.13 30.24 70.71 31.03 47.79 17.66
SR-GNN    70.57 30.94 71.36 31.89 49.90 16.31
LINet     71.23 31.12 71.89 32.03 51.74 17.53
"""
# LINet paper, Table II: Hit@20 MRR@20 on YooChoose 1/64 and Diginetica.
LINET_TABLE2 = """
LINet-No-LE 68.36 28.86 49.54 16.32
LINet-No-GE 68.58 29.27 48.69 15.89
LINet-No-AW 70.13 30.65 50.91 16.84
LINet-No-GW 70.09 30.67 50.63 16.57
LINet       71.23 31.12 51.74 17.53
"""

_without = {
    a: tuple(x for x in ("corrupt", "dropout", "insert", "identity") if x != a)
    for a in ("corrupt", "dropout", "insert", "identity")
}
FOCOL_ROW = Row("FOCOL", "focol")
# Fig. 3: one parameter varies, the others stay at the paper's defaults.
FIG3_BASE = {"beta": 0.03, "fogcn_layers": 3, "transformer_layers": 2}
FIG3_SWEEP: dict[str, tuple[Any, ...]] = {
    "beta": (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
    "fogcn_layers": (1, 2, 3, 4, 5),
    "transformer_layers": (1, 2, 3, 4, 5),
}
SWEEP_SYMBOLS = {"beta": "β", "fogcn_layers": "L_G", "transformer_layers": "L_T"}


def sweep_rows(sweep: Mapping[str, Sequence[Any]], base: Mapping[str, Any]) -> tuple[Row, ...]:
    """One FOCOL row per (parameter, value), the other parameters at `base`."""
    return tuple(
        Row(f"{name}={value:g}", "focol", {**base, name: value})
        for name, values in sweep.items()
        for value in values
    )


FOCOL_PAPER_TABLE2 = parse_paper_table(FOCOL_TABLE2, FOCOL_DATASETS, AT10_20)
LINET_PAPER_TABLE1 = parse_paper_table(LINET_TABLE1, LINET_DATASETS, AT20)

# Every table and figure, by name.
EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            "focol-table2",
            "FOCOL paper, Table 2",
            "Performance comparisons on three datasets",
            TABLE,
            (
                Row("ItemKNN", "itemknn"),
                Row("FPMC", "fpmc"),
                Row("GRU4Rec", "gru4rec"),
                Row("NARM", "narm"),
                Row("STAMP", "stamp"),
                Row("SR-GNN", "srgnn"),
                Row("GCE-GNN", "gcegnn"),
                Row("DHCN", "dhcn"),
                FOCOL_ROW,
            ),
            FOCOL_DATASETS,
            AT10_20,
            FOCOL_PAPER_TABLE2,
            "FOCOL",
        ),
        Experiment(
            "focol-table3",
            "FOCOL paper, Table 3",
            "FOCOL variants with FOGCN modified",
            TABLE,
            (
                Row("FOCOL-NG", "focol-ng", {"use_fogcn": False}),
                Row("FOCOL-SG", "focol-sg", {"learn_distance_weights": False}),
                FOCOL_ROW,
            ),
            FOCOL_DATASETS,
            AT20,
            parse_paper_table(FOCOL_TABLE3, FOCOL_DATASETS, AT20),
            "FOCOL",
        ),
        Experiment(
            "focol-table4",
            "FOCOL paper, Table 4",
            "FOCOL variants with CSRL modified",
            TABLE,
            (
                Row("FOCOL-NCL", "focol-ncl", {"beta": 0.0}),
                Row("FOCOL-NC", "focol-nc", {"augmentations": _without["corrupt"]}),
                Row("FOCOL-ND", "focol-nd", {"augmentations": _without["dropout"]}),
                Row("FOCOL-NI", "focol-ni", {"augmentations": _without["insert"]}),
                Row("FOCOL-NId", "focol-nid", {"augmentations": _without["identity"]}),
                FOCOL_ROW,
            ),
            FOCOL_DATASETS,
            AT20,
            parse_paper_table(FOCOL_TABLE4, FOCOL_DATASETS, AT20),
            "FOCOL",
        ),
        Experiment(
            "focol-fig3",
            "FOCOL paper, Figure 3",
            "Hyper-parameter study: β, L_G, L_T (others at β = 0.03, L_G = 3, L_T = 2)",
            SWEEP,
            sweep_rows(FIG3_SWEEP, FIG3_BASE),
            ("diginetica", "retailrocket"),
            AT20,
            sweep=FIG3_SWEEP,
        ),
        Experiment(
            "focol-fig4",
            "FOCOL paper, Figure 4",
            "Learned importance weight of each relative distance (one FOGCN layer)",
            IMPORTANCE,
            (Row("FOCOL (L_G = 1)", "focol", {"fogcn_layers": 1}),),
            FOCOL_DATASETS,
            AT20,
        ),
        Experiment(
            "linet-table1",
            "LINet paper, Table I",
            "Experimental results on three datasets",
            TABLE,
            (
                Row("Item-KNN", "itemknn"),
                Row("BPR-MF", "bprmf"),
                Row("FPMC", "fpmc"),
                Row("GRU4Rec", "gru4rec"),
                Row("NARM", "narm"),
                Row("STAMP", "stamp"),
                Row("RepeatNet", "repeatnet"),
                Row("SR-GNN", "srgnn"),
                Row("LINet", "linet"),
            ),
            ("yoochoose1_64", "diginetica"),
            AT20,
            LINET_PAPER_TABLE1,
            "LINet",
            optional_datasets=("yoochoose1_4",),
        ),
        Experiment(
            "linet-table2",
            "LINet paper, Table II",
            "Complete and incomplete versions of LINet",
            TABLE,
            (
                Row("LINet-No-LE", "linet-no-le", {"local_encoder": False}),
                Row("LINet-No-GE", "linet-no-ge", {"global_encoder": False}),
                Row("LINet-No-AW", "linet-no-aw", {"attention_weights": False}),
                Row("LINet-No-GW", "linet-no-gw", {"gaussian_weights": False}),
                Row("LINet", "linet"),
            ),
            ("yoochoose1_64", "diginetica"),
            AT20,
            parse_paper_table(LINET_TABLE2, ("yoochoose1_64", "diginetica"), AT20),
            "LINet",
        ),
        Experiment(
            "linet-fig1",
            "LINet paper, Figure 1",
            "Share of similar test pairs predicted correctly (top 20) against θ",
            INVARIANCE,
            (
                Row("NARM", "narm"),
                Row("RepeatNet", "repeatnet"),
                Row("SR-GNN", "srgnn"),
                Row("LINet", "linet"),
            ),
            ("yoochoose1_64", "diginetica"),
            AT20,
            {
                label: LINET_PAPER_TABLE1[label]
                for label in ("NARM", "RepeatNet", "SR-GNN", "LINet")
            },
            "LINet",
        ),
    )
}


def get_experiment(name: str) -> Experiment:
    """The experiment called `name`; an unknown name is one ConfigError listing the choices."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ConfigError(
            f"unknown experiment '{name}' (available: {', '.join(EXPERIMENTS)})"
        ) from None
