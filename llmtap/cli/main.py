"""``llmtap``: profile LLM calls into Redis Streams, run the workers that turn them into cost,
latency, alerts and reports, and read the numbers back. Each cli module registers its commands."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every subcommand registered."""
    from llmtap.cli import alerts, demo, mcp, metrics, plugins, read, report, serve, worker

    parser = argparse.ArgumentParser(prog="llmtap", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo.add_parser(sub)
    worker.add_parsers(sub)
    alerts.add_parsers(sub)
    read.add_parsers(sub)
    report.add_parsers(sub)
    serve.add_parsers(sub)
    mcp.add_parser(sub)
    metrics.add_parser(sub)
    plugins.add_parsers(sub)  # last: a plugin read may not take a built-in command's name
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from llmtap.cli.common import dispatch

    return dispatch(args)


if __name__ == "__main__":
    sys.exit(main())
