"""The PDF report: read back with pypdf's text extraction and rendered to PNG with PDFium; the
numbers match the report model, and every page carries the period and generation time."""

from __future__ import annotations

import sys
from io import BytesIO
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
import redis
from pypdf import PdfReader

from llmtap.analyzers.extras import MissingExtra, optional
from llmtap.analyzers.report_output import check_formats, render_bytes
from llmtap.analyzers.report_pdf import page_css, render_pdf
from llmtap.analyzers.units import human, usd
from llmtap.testing import Workload
from tests.report_helpers import artifact_dir, weekly_model


@pytest.fixture
def model(r: redis.Redis, day_of_traffic: Workload) -> dict[str, Any]:
    """The weekly report model of a day of synthetic traffic."""
    return weekly_model(r)


def _pages(pdf: bytes) -> list[str]:
    reader = PdfReader(BytesIO(pdf))
    return [" ".join((page.extract_text() or "").split()) for page in reader.pages]


def test_pdf_text_holds_the_models_numbers(model: dict[str, Any]) -> None:
    """The extracted text shows the total cost, calls, every backend's cost and the top
    session's cost as the model has them."""
    text = " ".join(_pages(render_pdf(model)))
    summary = model["summary"]
    # The HTML report (and so the PDF) shows dollars and counts for people (analyzers.units).
    assert f"total_cost_usd {usd(summary['total_cost_usd'])}" in text
    assert f"total_calls {human('total_calls', summary['total_calls'])}" in text
    for backend, row in model["cost"]["cost_by_backend"].items():
        assert f"{backend} {usd(row['cost_usd'])} {row['calls']} {row['errors']}" in text
    top = model["top_sessions"][0]
    assert f"{top['session_id']} {usd(top['cost_usd'])} {top['calls']}" in text


def test_every_page_has_the_period_generation_time_and_page_number(model: dict[str, Any]) -> None:
    """The report runs over several pages, each with the period, the generation time and
    'page N of M' in its margins."""
    pages = _pages(render_pdf(model))
    period = model["period"]
    assert len(pages) >= 2
    for number, text in enumerate(pages, 1):
        assert f"period {period['since_iso']} to {period['until_iso']}" in text
        assert f"generated {model['generated_at']}" in text
        assert f"page {number} of {len(pages)}" in text


def test_first_page_renders_to_a_png_artifact(model: dict[str, Any], tmp_path: Path) -> None:
    """PDFium renders page one (charts included: coloured pixels) to a PNG kept as an artifact
    in $LLMTAP_TEST_ARTIFACTS (default: the test's tmp dir)."""
    document = pdfium.PdfDocument(render_pdf(model))
    image = document[0].render(scale=1.5).to_pil().convert("RGB")
    document.close()
    path = artifact_dir(tmp_path) / "report-page-1.png"
    image.save(path)
    assert path.stat().st_size > 10_000
    width, height = image.size
    assert height > width  # A4 portrait
    colours = {image.getpixel((x, y)) for x in range(0, width, 7) for y in range(0, height // 2, 7)}
    chart_blue = (0x4E, 0x79, 0xA7)
    assert any(all(abs(a - b) < 24 for a, b in zip(c, chart_blue, strict=True)) for c in colours)


def test_a_title_with_quotes_cannot_break_the_page_header(model: dict[str, Any]) -> None:
    """Quotes, backslashes and newlines in the title are escaped in the header's CSS string."""
    model["title"] = 'Q1 "final" \\ report\nnext'
    css = page_css(model)
    assert 'content: "Q1 \\"final\\" \\\\ report next"' in css
    assert 'Q1 "final" \\ report next' in _pages(render_pdf(model))[1]


def test_without_the_extra_the_format_names_it(
    model: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without WeasyPrint, a PDF report (and the start-time check) says in one line which
    extra to install."""
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # makes `import weasyprint` fail
    with pytest.raises(MissingExtra, match=r"PDF reports needs the reports extra: .*llmtap\[rep"):
        render_bytes(model, "pdf")
    with pytest.raises(MissingExtra, match="reports extra"):
        check_formats(["md", "pdf"])
    with pytest.raises(ValueError, match="unknown report format 'docx'"):
        check_formats(["docx"])
    assert optional("json", "JSON").dumps([1]) == "[1]"
