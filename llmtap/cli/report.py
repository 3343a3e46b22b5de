"""The ``llmtap report`` command: renders the report of a period (Markdown, HTML, JSON, CSV, and
with the reports extra PDF and Excel) from the aggregates, and the time parsing of its
``--since``/``--until``."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import time
from pathlib import Path
from typing import Any, Final

import redis

from llmtap.analyzers import report
from llmtap.analyzers.report_output import BINARY, render_bytes
from llmtap.cli import common
from llmtap.read.report import get_report_data

_DURATION: Final = re.compile(r"^(\d+(?:\.\d+)?)([mhdw])$")
_UNIT_S: Final = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_time(raw: str, now: float) -> float:
    """Return Unix seconds for ``raw``: a duration back from ``now`` (``90m``, ``24h``, ``7d``,
    ``2w``), an ISO date or time (UTC unless it says otherwise) or Unix seconds.

    Raises ValueError naming the accepted forms.
    """
    value = raw.strip()
    match = _DURATION.match(value)
    if match:
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{raw!r}: expected a duration (90m, 24h, 7d, 2w), an ISO date/time or Unix seconds"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


def add_parsers(subparsers: Any) -> None:
    """Register ``llmtap report`` on the ``llmtap`` parser."""
    parser = common.add_command(subparsers, "report", "write a report for a period", _report)
    parser.add_argument("--since", default="24h", help="start: 24h, 7d, ISO time, Unix s")
    parser.add_argument("--until", help="end (default: now)")
    parser.add_argument("--format", choices=report.FORMATS, default="md")
    parser.add_argument("--out", help="file to write (default: standard output)")


def _report(client: redis.Redis, args: argparse.Namespace) -> Any:
    now = time.time()
    until = parse_time(args.until, now) if args.until else now
    since = parse_time(args.since, until)
    model = get_report_data(client, since, until)
    if not args.out and args.format in BINARY and sys.stdout.isatty():
        raise ValueError(f"a {args.format} report is binary: give --out FILE or redirect stdout")
    content = render_bytes(model, args.format)
    if args.out:
        Path(args.out).write_bytes(content)
        print(f"llmtap: wrote {args.format} report to {args.out}", file=sys.stderr)
    elif args.format in BINARY:
        sys.stdout.flush()
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(content.decode("utf-8"))
    return None
