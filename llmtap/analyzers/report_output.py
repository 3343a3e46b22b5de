"""Every report format as bytes, with its file extension and media type: the text formats of
:mod:`llmtap.analyzers.report` (UTF-8) and the binary ones, PDF and XLSX (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from llmtap.analyzers import report
from llmtap.analyzers.extras import MissingExtra, optional
from llmtap.analyzers.report_pdf import render_pdf
from llmtap.analyzers.report_xlsx import render_xlsx

BINARY: Final[dict[str, Callable[[Mapping[str, Any]], bytes]]] = {
    "pdf": render_pdf,
    "xlsx": render_xlsx,
}
MEDIA_TYPES: Final = {
    "md": "text/markdown",
    "html": "text/html",
    "json": "application/json",
    "csv": "text/csv",
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_NEEDS: Final = {"pdf": ("weasyprint", "PDF reports"), "xlsx": ("openpyxl", "Excel reports")}


def render_bytes(model: Mapping[str, Any], fmt: str) -> bytes:
    """Return the report as ``fmt``'s bytes. Raises ValueError for an unknown format and
    MissingExtra (a ValueError) when the format's extra is not installed."""
    if fmt in BINARY:
        return BINARY[fmt](model)
    return report.render(model, fmt).encode("utf-8")


def check_formats(formats: Iterable[str]) -> None:
    """Raise ValueError for an unknown format, MissingExtra for one whose extra is missing."""
    for fmt in formats:
        if fmt not in report.FORMATS:
            raise ValueError(f"unknown report format {fmt!r}; known: {', '.join(report.FORMATS)}")
        if fmt in _NEEDS:
            optional(*_NEEDS[fmt])


__all__ = ["BINARY", "MEDIA_TYPES", "MissingExtra", "check_formats", "render_bytes"]
