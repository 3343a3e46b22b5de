"""``llmtap report --format pdf|xlsx``: bytes to a file, and one line naming the extra when
it is missing."""

from __future__ import annotations

import sys
from io import BytesIO
from pathlib import Path

import openpyxl
import pytest

from llmtap import cli
from llmtap.testing import Workload
from tests.report_helpers import WEEK


def _args(redis_url: str, fmt: str) -> list[str]:
    since, until = (str(t) for t in WEEK)
    return ["report", "--url", redis_url, "--since", since, "--until", until, "--format", fmt]


def test_xlsx_and_pdf_reports_are_written_as_bytes(
    redis_url: str, day_of_traffic: Workload, tmp_path: Path
) -> None:
    """--format xlsx writes a workbook openpyxl reads; --format pdf writes a PDF."""
    book, pdf = tmp_path / "week.xlsx", tmp_path / "week.pdf"
    assert cli.main([*_args(redis_url, "xlsx"), "--out", str(book)]) == 0
    assert cli.main([*_args(redis_url, "pdf"), "--out", str(pdf)]) == 0
    summary = openpyxl.load_workbook(BytesIO(book.read_bytes()))["Summary"]
    calls = {row[0].value: row[1].value for row in summary.iter_rows(min_row=2)}["calls"]
    assert calls == day_of_traffic.truth.calls
    assert pdf.read_bytes().startswith(b"%PDF-")


def test_without_the_extra_the_command_names_it(
    redis_url: str,
    day_of_traffic: Workload,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without openpyxl, --format xlsx exits 2 with one line naming the reports extra."""
    monkeypatch.setitem(sys.modules, "openpyxl", None)
    assert cli.main([*_args(redis_url, "xlsx"), "--out", str(tmp_path / "w.xlsx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "llmtap: Excel reports needs the reports extra: pip install 'llmtap[reports]'"
    assert not (tmp_path / "w.xlsx").exists()
