"""The report as PDF: the HTML report (charts included) laid out on A4 pages by WeasyPrint, with
the period and generation time in every page's header and page numbers in the footer (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from llmtap.analyzers.extras import optional
from llmtap.analyzers.report import render_html

PAGE_CSS: Final = """
@page {
  size: A4; margin: 22mm 14mm 16mm 14mm;
  @top-left { content: "%(title)s"; font: bold 9pt sans-serif; }
  @top-right { content: "period %(period)s"; font: 8pt sans-serif; color: #444; }
  @bottom-left { content: "generated %(generated)s"; font: 8pt sans-serif; color: #444; }
  @bottom-right { content: "page " counter(page) " of " counter(pages); font: 8pt sans-serif; }
}
body { margin: 0; font-size: 9pt; }
h1 { font-size: 16pt; margin: 0 0 4pt 0; }
h2 { font-size: 11pt; margin: 12pt 0 4pt 0; break-after: avoid; }
table { width: 100%%; font-size: 8pt; }
td, th { overflow-wrap: anywhere; }
thead { display: table-header-group; }
tr, svg { break-inside: avoid; }
svg { max-width: 100%%; height: auto; }
"""


def _css_string(text: str) -> str:
    """Return ``text`` safe inside a double-quoted CSS string (no quote, backslash or newline)."""
    return " ".join(text.replace("\\", "\\\\").replace('"', '\\"').split())


def page_css(model: Mapping[str, Any]) -> str:
    """Return the print stylesheet: page size, margins, and the header and footer of each page."""
    period = model["period"]
    return PAGE_CSS % {
        "title": _css_string(str(model["title"])),
        "period": _css_string(f"{period['since_iso']} to {period['until_iso']}"),
        "generated": _css_string(str(model["generated_at"])),
    }


def render_pdf(model: Mapping[str, Any]) -> bytes:
    """Return the report as PDF bytes. Raises MissingExtra without WeasyPrint.

    Only ``data:`` URLs are fetched, so nothing in a report can make the renderer read a file
    or the network.
    """
    weasyprint = optional("weasyprint", "PDF reports")
    page = render_html(model).replace("</head>", f"<style>{page_css(model)}</style></head>", 1)
    fetcher = weasyprint.URLFetcher(allowed_protocols=("data",))
    pdf: bytes = weasyprint.HTML(string=page, url_fetcher=fetcher).write_pdf()
    return pdf
