"""The exported report in every format, from seeded synthetic traffic."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import redis

from llmtap.read import tools
from tests.read.truth import NOW, Truth


def test_export_renders_every_format(r: redis.Redis, truth: Truth, tmp_path: Path) -> None:
    """JSON parses with the exact total, CSV rows parse, HTML is well-formed with two SVGs."""
    total = sum(row.cost_nanousd for row in truth.rows()) / 1e9
    as_json = tools.export_performance_report(r, 24, "json", now=NOW)
    model = json.loads(as_json["content"])
    assert model["summary"]["total_cost_usd"] == pytest.approx(total, rel=1e-15)
    assert model["alerts"]["history_available"] is False
    as_csv = tools.export_performance_report(r, 24, "csv", now=NOW)["content"]
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert {"section", "name", "metric", "value"} == set(rows[0])
    by_backend = {
        row["name"]: float(row["value"])
        for row in rows
        if row["section"] == "cost_by_backend" and row["metric"] == "cost_usd"
    }
    assert by_backend == pytest.approx({b: v / 1e9 for b, v in truth.cost_by("backend").items()})
    out = tmp_path / "report.html"
    tools.export_performance_report(r, 24, "html", str(out), now=NOW)
    page = ET.fromstring(out.read_text().removeprefix("<!DOCTYPE html>\n"))
    svgs = page.findall(".//{http://www.w3.org/2000/svg}svg")
    assert len(svgs) == 2
    assert page.findall(".//{http://www.w3.org/2000/svg}polyline")
    assert "No alert history" in out.read_text()
    md = tools.export_performance_report(r, 24, "md", now=NOW)["content"]
    assert md.startswith("# llmtap report") and "## Cost by model" in md
