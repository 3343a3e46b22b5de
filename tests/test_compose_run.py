"""Each compose worker service's command, run here as a local process, becomes healthy.

No Docker engine runs on the build machines, so the containers' commands run as plain
processes against the embedded Valkey, and the compose healthcheck command judges them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.compose_helpers import load_compose, worker_services

BIN = Path(sys.executable).parent


def _local(argv: list[str]) -> list[str]:
    """The container argv with its entrypoint resolved to this environment's script."""
    return [str(BIN / argv[0]), *argv[1:]]


def _healthcheck(name: str) -> list[str]:
    test = load_compose()["services"][name]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return _local(test[1:])


@pytest.mark.parametrize("name", sorted(worker_services()))
def test_worker_service_command_becomes_healthy(name: str, redis_url: str, tmp_path: Path) -> None:
    """The service's command runs, and its compose healthcheck passes within the deadline."""
    env = {**os.environ, "LLMTAP_REDIS_URL": redis_url}
    log = tmp_path / f"{name}.log"
    with (
        log.open("w") as sink,
        subprocess.Popen(
            _local(worker_services()[name]), env=env, stdout=sink, stderr=subprocess.STDOUT
        ) as worker,
    ):
        try:
            assert _becomes_healthy(name, env, worker), log.read_text()
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
    assert worker.returncode == 0, log.read_text()


def _becomes_healthy(name: str, env: dict[str, str], worker: subprocess.Popen[bytes]) -> bool:
    """Run the healthcheck until it passes (True) or the worker dies or time runs out."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker.poll() is None:
        check = subprocess.run(_healthcheck(name), env=env, capture_output=True, timeout=30)
        if check.returncode == 0:
            return True
        time.sleep(0.2)  # the worker writes its first heartbeat after connecting
    return False
