"""The worker context: everything a worker process reads from its environment, built once.

An entry point (``llmtap worker``/``up``, the FastStream app factory, the :mod:`service`
Python API) builds one :class:`WorkerContext` at start and passes it to every worker it runs;
no worker reads ``os.environ`` itself. Building it validates every variable any worker reads,
so a bad value stops every worker at start the same way, before it connects to Redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from llmtap.analyzers.pricing import PricingError
from llmtap.consumers.runtime.config import Retention, RuntimeConfig, worker_shards
from llmtap.producers.prices import read_overrides
from llmtap.settings import Settings, SettingsError

if TYPE_CHECKING:
    from llmtap.analyzers.rules import Rule
    from llmtap.consumers.notify.model import Receiver
    from llmtap.consumers.reports import ReportConfig

PRICES_ENV = "LLMTAP_PRICES_FILE"


def validate(environ: Mapping[str, str], *, settings: Settings | None = None) -> Settings:
    """Return the validated settings of ``environ`` after checking the prices file: the checks
    every llmtap process makes at start (workers, and the read commands).

    Raises SettingsError naming the first bad variable (a bad prices file names
    LLMTAP_PRICES_FILE).
    """
    checked = Settings.from_env(environ) if settings is None else settings
    if checked.prices_file is not None:
        try:
            read_overrides(checked.prices_file)
        except PricingError as exc:
            raise SettingsError(f"{PRICES_ENV}: {exc}") from None
    return checked


@dataclass(frozen=True)
class WorkerContext:
    """The Redis URL, the validated settings and a snapshot of the environment at start.

    ``environ`` is for parsers that run again later (the alerts worker re-reads its rules file
    when it changes); it never changes after the context is built. ``rules``, ``receivers``,
    ``reports`` and ``tick_s`` are the alert rules, the notifier's receivers (alerts and
    reports), the report configuration and the alert tick, validated at start. ``shards``
    are the shards this replica consumes (``LLMTAP_WORKER_SHARDS``; empty: every one).
    """

    url: str = field(repr=False)  # may carry a password
    settings: Settings
    runtime: RuntimeConfig
    retention: Retention
    environ: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    rules: tuple[Rule, ...] = ()
    receivers: tuple[Receiver, ...] = ()
    reports: ReportConfig | None = None
    tick_s: float = 5.0
    shards: tuple[int, ...] = ()

    @property
    def consumed_shards(self) -> tuple[int, ...]:
        """The shards this replica consumes: ``shards``, or every one when it is empty."""
        return self.shards or tuple(range(self.settings.shards))

    @classmethod
    def from_environ(
        cls,
        url: str,
        environ: Mapping[str, str],
        *,
        settings: Settings | None = None,
        runtime: RuntimeConfig | None = None,
        retention: Retention | None = None,
    ) -> WorkerContext:
        """Return the context for ``url``, parsing what is not given from a snapshot of
        ``environ``: settings and prices file, runtime, retention, alert rules, receivers,
        report configuration and the alert tick. Raises SettingsError naming the first bad
        variable; opens no connection."""
        from llmtap.consumers.alerts.evaluator import tick_from_env
        from llmtap.consumers.alerts.rules_file import rules_from_env
        from llmtap.consumers.notify.config import receivers_from_env
        from llmtap.consumers.reports import ReportConfig

        snapshot = MappingProxyType(dict(environ))
        checked = validate(snapshot, settings=settings)
        reports = ReportConfig.from_env(snapshot)
        return cls(
            url=url,
            settings=checked,
            runtime=RuntimeConfig.from_env(snapshot) if runtime is None else runtime,
            retention=Retention.from_env(snapshot) if retention is None else retention,
            environ=snapshot,
            rules=tuple(rules_from_env(snapshot, checked)),
            receivers=(*receivers_from_env(snapshot), *reports.receivers()),
            reports=reports,
            tick_s=tick_from_env(snapshot),
            shards=worker_shards(snapshot, checked.shards),
        )
