"""Every cli test gets its own place for the file `llmtap up` writes, so no test finds (or
leaves) a real `llmtap up` of the machine: ``XDG_RUNTIME_DIR`` points into the test's folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def own_up_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``XDG_RUNTIME_DIR`` (where `llmtap up` records its URL) at a fresh folder."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    return runtime
