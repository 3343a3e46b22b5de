"""Helpers for the PDF, Excel and email report tests: the weekly report model of the day of
traffic, and the directory where test artifacts (rendered pages) are kept."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import redis

from llmtap.read.report import get_report_data

DAY = 86_400
DAY0 = 1_767_225_600  # 2026-01-01T00:00Z, a Thursday
WEEK = (DAY0 - 3 * DAY, DAY0 + 4 * DAY)  # Monday 29 Dec to Monday 5 Jan: holds the traffic
ARTIFACTS_ENV = "LLMTAP_TEST_ARTIFACTS"


def weekly_model(r: redis.Redis) -> dict[str, Any]:
    """The report model of the week that holds ``day_of_traffic``."""
    return get_report_data(r, *WEEK)


def artifact_dir(tmp_path: Path) -> Path:
    """The directory to keep artifacts in: $LLMTAP_TEST_ARTIFACTS, or the test's tmp dir."""
    folder = Path(os.environ.get(ARTIFACTS_ENV) or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
