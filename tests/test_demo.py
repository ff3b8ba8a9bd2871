"""`sessionrec demo` as `make demo` runs it, on a small configuration: FOCOL's row, two PNGs,
the next steps, and one clear line for bad options."""

import subprocess

import pytest
from PIL import Image

from helpers import run_cli, run_main
from sessionrec.demo import DEMO_MODELS, METRICS_PNG, WEIGHTS_PNG

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("demo", *args, timeout=300)


def test_demo_trains_the_papers_models() -> None:
    assert {"pop", "linet", "focol"} <= set(DEMO_MODELS)


def test_small_demo_shows_focol_and_writes_two_pngs(tmp_path) -> None:
    # 2,000 sessions, one epoch, two models: ~10 s instead of the full demo's minutes
    proc = demo(
        "--sessions", "2000", "--epochs", "1", "--models", "pop,focol", "--out", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    table_rows = [line.split("│")[1].strip() for line in proc.stdout.splitlines() if "│" in line]
    assert table_rows == ["pop", "focol"]
    for name in (METRICS_PNG, WEIGHTS_PNG):
        path = tmp_path / name
        assert f"wrote {path}" in proc.stdout
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as image:
            image.verify()  # a complete, uncorrupted PNG
            assert image.format == "PNG" and min(image.size) > 100
    last = proc.stdout.strip().splitlines()[-3:]
    assert "sessionrec train narm --dataset diginetica" in last[0]
    assert f"sessionrec serve {tmp_path / 'focol'}" in last[1]
    assert "sessionrec reproduce focol-table2" in last[2]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--models", "pop,nosuch"], "unknown demo model(s) 'nosuch'; choose from pop,"),
        (["--models", ","], "--models: no model named; choose from"),
        (["--sessions", "10"], "--sessions must be at least 1,000, got 10"),
        (["--epochs", "0"], "epochs must be at least 1, got 0"),
        (["--out", __file__], "exists and is not a directory"),
    ],
)
def test_bad_options_give_one_line(args, message, monkeypatch, capsys) -> None:
    assert run_main(["demo", *args], monkeypatch) == 1  # refused before any data is generated
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sessionrec: error:"), lines
    assert message in lines[0]
