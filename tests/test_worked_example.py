"""README's worked example, line for line: a CSV click log to a served model."""

import json
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from helpers import ENV as BASE_ENV
from helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(BASE_ENV, OMP_NUM_THREADS="1")


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- worked-example:begin -->\n```bash\n(.*?)```", text, re.S)
    assert block, "README.md lost its worked example"
    return [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]


def write_clicks(path: Path) -> None:
    """1,500 sessions over 60 items that follow each other in small cycles: learnable."""
    rng = np.random.default_rng(0)
    rows, t = ["SessionId,ItemId,Time"], 1_700_000_000
    for s in range(1500):
        t += int(rng.integers(60, 600))
        item = int(rng.integers(0, 60))
        for k in range(int(rng.integers(2, 7))):
            rows.append(f"u{s},sku-{item},{t + 30 * k}")
            item = (item + int(rng.integers(1, 3))) % 60
    path.write_text("\n".join(rows) + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readme_worked_example_runs_as_written(tmp_path):
    commands = readme_commands()
    assert [c[:2] for c in commands] == [
        ["sessionrec", "datasets"], ["sessionrec", "train"], ["sessionrec", "evaluate"],
        ["sessionrec", "recommend"], ["sessionrec", "serve"],
    ]  # fmt: skip
    write_clicks(tmp_path / "clicks.csv")
    for command in commands[:-1]:
        done = run_cli(*command[1:], cwd=tmp_path)
        assert done.returncode == 0, f"{shlex.join(command)}: {done.stderr}"
    assert "sku-" in done.stdout  # recommend answered in the log's own ids
    serve = commands[-1][1:]
    port = free_port()
    serve[serve.index("--port") + 1] = str(port)
    server = subprocess.Popen(
        [sys.executable, "-m", "sessionrec", *serve, "--log-level", "warning"],
        cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        body = json.dumps({"session": ["sku-12", "sku-7"], "k": 5}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/recommend", body, {"content-type": "application/json"}
        )
        deadline = time.monotonic() + 300  # a loaded CI machine starts slowly
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    answer = json.loads(response.read())
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "the service did not answer in 60 s"
                time.sleep(0.3)
        assert len(answer["items"]) == 5 and all(i.startswith("sku-") for i in answer["items"])
    finally:
        server.terminate()
        server.wait(timeout=30)
