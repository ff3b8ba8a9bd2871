"""ONNX export (serving/onnx.py): ONNX Runtime's scores equal torch's on 1,000 test sessions,
`serve --backend onnx` answers as torch does, and what cannot export is refused in one line."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import torch

from helpers import run_main
from sessionrec.errors import ConfigError, RunError
from sessionrec.serving import SessionRecommender
from sessionrec.serving.onnx import TOLERANCE, export_run

from .conftest import _train

pytest.importorskip("onnxruntime")
N_SESSIONS = 1000


# Models whose run is the shared fixture `{name}_run` (serving/conftest.py, with its own
# settings); every other model is trained here with its defaults.
SHARED_RUNS = ("stamp", "focol")


@pytest.fixture(scope="module")
def exported(request, tiny, runs, tmp_path_factory):
    """`exported(name)`: (the model's run directory, its ONNX file), trained and exported
    through the API once per module."""
    out, done = tmp_path_factory.mktemp("onnx"), {}

    def get(name: str):
        if name not in done:
            if name in SHARED_RUNS:
                run = request.getfixturevalue(f"{name}_run")
            else:
                run = _train(name, tiny, runs / name)
            export_run(run, out / f"{name}.onnx")
            done[name] = run, out / f"{name}.onnx"
        return done[name]

    return get


def _test_batches(tiny, n: int, size: int = 250):
    """The first `n` test sessions as right-padded (items, lengths) batches."""
    for start in range(0, min(n, len(tiny.test)), size):
        seqs = [tiny.test.sequence(i).tolist() for i in range(start, min(start + size, n))]
        width = max(map(len, seqs))
        items = torch.tensor([s + [0] * (width - len(s)) for s in seqs], dtype=torch.long)
        yield items, torch.tensor([len(s) for s in seqs])


@pytest.mark.parametrize(
    "name", ["stamp", "narm", "focol", "srgnn", "repeatnet", "dhcn", "gru4rec"]
)
def test_onnx_scores_equal_torch_on_1000_test_sessions(name, exported, tiny):
    assert len(tiny.test) >= N_SESSIONS
    run, path = exported(name)
    torch_rec = SessionRecommender.load(run)
    onnx_rec = SessionRecommender.load(run, backend="onnx", onnx_file=path)
    worst, seen = 0.0, 0
    for items, lengths in _test_batches(tiny, N_SESSIONS):
        with torch.no_grad():
            want = torch_rec.model.net(items, lengths)
        got = onnx_rec.onnx.scores(items, lengths)
        assert got.shape == want.shape == (len(items), tiny.num_items + 1)
        diff = torch.where(got == want, 0.0, (got - want).abs())  # equal -inf (masked) is 0
        assert not diff.isnan().any()
        worst, seen = max(worst, float(diff.max())), seen + len(items)
    assert seen == N_SESSIONS and worst <= TOLERANCE, worst
    sessions = [tiny.test.sequence(i).tolist() for i in range(50)]
    top = [[r.items for r in rec.recommend_batch(sessions, 10)] for rec in (torch_rec, onnx_rec)]
    assert top[0] == top[1]
    assert onnx_rec.info()["backend"] == f"onnx ({path})"


def test_http_backend_onnx_answers_as_torch(exported, serve_cli, tiny):
    run, path = exported("stamp")
    torch_rec = SessionRecommender.load(run)
    sessions = [tiny.test.sequence(i).tolist() for i in range(0, 200, 20)]
    with serve_cli(run, "--backend", "onnx", "--onnx", str(path)) as url:
        assert httpx.get(f"{url}/model").json()["backend"] == f"onnx ({path})"
        for s in sessions:
            got = httpx.post(f"{url}/recommend", json={"session": s, "k": 10}).json()
            want = torch_rec.recommend(s, 10)
            assert got["items"] == want.items
            np.testing.assert_allclose(got["scores"], want.scores, atol=TOLERANCE)


def test_the_service_removes_its_own_export_when_it_stops(exported, serve_cli, tmp_path):
    run, _ = exported("stamp")
    environ = {"TMPDIR": str(tmp_path), "SESSIONREC_ADMIN_TOKEN": "t"}
    with serve_cli(run, "--backend", "onnx", environ=environ) as url:
        (scratch,) = tmp_path.glob("sessionrec-serve-*")  # one directory for its own files
        assert httpx.get(f"{url}/model").json()["backend"] == f"onnx ({scratch / 'model.onnx'})"
        assert (scratch / "reload").parent.is_dir()
    left = [p.name for p in tmp_path.iterdir()]
    assert not scratch.exists(), left  # removed when the service stopped


def test_export_cli_writes_a_file_and_refuses_a_model_without_encoder(
    pop_run, tmp_path, monkeypatch, capsys
):
    code = run_main(["export", pop_run, "--output", tmp_path / "pop.onnx"], monkeypatch)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "model 'pop' has no torch encoder to export to ONNX" in err[0]
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_onnx_file_of_another_run_is_refused(exported):
    stamp, _ = exported("stamp")
    _, narm_file = exported("narm")
    with pytest.raises(RunError, match=r"narm\.onnx: exported from another run \(model narm"):
        SessionRecommender.load(stamp, backend="onnx", onnx_file=narm_file)


def test_bad_backend_settings_are_refused(stamp_run, tmp_path):
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'"):
        SessionRecommender.load(stamp_run, backend="tensorrt")
    (tmp_path / "bad.onnx").write_text("not onnx")
    with pytest.raises(RunError, match=r"bad\.onnx: not a valid ONNX model"):
        SessionRecommender.load(stamp_run, backend="onnx", onnx_file=tmp_path / "bad.onnx")


@pytest.mark.parametrize("name", ["focol", "dhcn", "gru4rec"])
def test_onnx_session_encoder_with_the_int8_index_answers_as_torch(name, exported, tiny, tmp_path):
    """`--backend onnx --ann int8`: ONNX Runtime runs the session encoder, the index scores."""
    run, scores_file = exported(name)
    torch_rec = SessionRecommender.load(run)
    path = tmp_path / f"{name}-hs.onnx"
    done = export_run(run, path, computes="session_vectors")
    assert done["computes"] == "session_vectors" and done["diff"] <= TOLERANCE
    for onnx_file in (path, None):  # the file, or an export made at load
        rec = SessionRecommender.load(run, backend="onnx", onnx_file=onnx_file, ann="int8")
        for i in range(0, 300, 30):
            s = tiny.test.sequence(i).tolist()
            got, want = rec.recommend(s, 10, exclude=s[:1]), torch_rec.recommend(s, 10, s[:1])
            assert got.items == want.items
            np.testing.assert_allclose(got.scores, want.scores, atol=TOLERANCE)
    with pytest.raises(RunError, match=r"computes scores, and a top-k index \(--ann\) needs "):
        SessionRecommender.load(run, backend="onnx", onnx_file=scores_file, ann="int8")
    with pytest.raises(RunError, match=r"computes session vectors, and scoring every item"):
        SessionRecommender.load(run, backend="onnx", onnx_file=path)


def test_export_cli_session_vectors(exported, pop_run, tmp_path, monkeypatch, capsys):
    run, _ = exported("stamp")
    out = tmp_path / "hs.onnx"
    code = run_main(["export", run, "--output", out, "--session-vectors"], monkeypatch)
    assert code == 0 and "ONNX Runtime's session vectors differ" in capsys.readouterr().out
    rec = SessionRecommender.load(run, backend="onnx", onnx_file=out, ann="int8")
    assert (
        rec.recommend([1, 2, 3], 5).items
        == SessionRecommender.load(run).recommend([1, 2, 3], 5).items
    )
    code = run_main(["export", pop_run, "--output", tmp_path / "p.onnx", "--session-vectors"],
                    monkeypatch)  # fmt: skip
    assert code == 1 and "has no torch encoder" in capsys.readouterr().err
