"""The ``llmtap`` command: one module per group of subcommands, assembled in :mod:`.main`."""

from llmtap.cli.main import main

__all__ = ["main"]
