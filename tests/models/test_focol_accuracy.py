"""FOCOL against NARM and FOCOL-NG on seeded synthetic data (issue 3's accuracy check).

The synthetic generator puts signal in short-distance co-occurrence across sessions, which is
what the FOG captures; the global graph must therefore lift HR@20 far above FOCOL without its
graph, and FOCOL must stay at least level with the GRU model. Measured at these settings
(seed 0, 230 test cases, 2026-12-04): focol 75.65, narm 74.55, focol-ng 48.62 HR@20 (%). Until
NARM's item table started at N(0, 0.1²) instead of N(0, 1) (docs/baselines-neural.md) it was
at 69.7 and this test asked FOCOL for a 2-point lead; 1 point is 2.3 cases here, too few to
assert a lead over a properly initialised NARM, so it asserts FOCOL is not behind it.
"""

import pytest
import torch

from sessionrec.data.synthetic import make_synthetic
from sessionrec.models import create
from sessionrec.training.config import TrainConfig
from sessionrec.training.run import train_and_evaluate

CONFIG = TrainConfig(epochs=3, batch_size=100, lr=3e-3, patience=3, num_threads=1, seed=0)


@pytest.fixture(scope="module")
def data():
    return make_synthetic(num_items=400, num_categories=8, num_sessions=2500, seed=0)


def test_focol_beats_narm_and_focol_without_graph_on_hr20(data):
    torch.set_num_threads(1)
    hr = {
        name: train_and_evaluate(
            create(name, data.num_items, seed=0, embedding_dim=64), data, CONFIG
        )["test"]["hr@20"]
        for name in ("focol", "narm", "focol-ng")
    }
    assert hr["focol"] >= hr["narm"], hr
    assert hr["focol"] > hr["focol-ng"] + 0.05, hr
