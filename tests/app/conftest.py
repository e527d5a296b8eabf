"""The web app's server for the tests: `python app.py` on the demo model, on a free loopback
port, in its own process (as a user starts it), shared by the tests of this folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
START_SECONDS = 240  # imports and the model load; several times longer on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(1)
    process.kill()
    pytest.fail(f"app.py did not serve {url} within {START_SECONDS} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """(url, session root) of a running app on the demo model; stopped after the tests."""
    pytest.importorskip("gradio", reason="the web app needs the app extra (gradio)")
    root = tmp_path_factory.mktemp("app")
    sessions = root / "sessions"
    port = free_port()
    log = root / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [
        sys.executable,
        str(REPO / "app.py"),
        f"app.port={port}",
        f"app.session_dir={sessions}",
        "device=cpu",
        "cpu_threads=1",
    ]
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, process, log)
        yield url, sessions, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
