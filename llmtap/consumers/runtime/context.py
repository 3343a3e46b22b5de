"""The worker context: everything a worker process reads from its environment, built once.

An entry point (``llmtap worker``/``up``, the FastStream app factory, the :mod:`service`
Python API) builds one :class:`WorkerContext` at start and passes it to every worker it runs;
no worker reads ``os.environ`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from llmtap.consumers.runtime.config import Retention, RuntimeConfig
from llmtap.settings import Settings


@dataclass(frozen=True)
class WorkerContext:
    """The Redis URL, the validated settings and a snapshot of the environment at start.

    ``environ`` is for the parsers of one worker's own variables (alert rules, receivers,
    report schedules); it never changes after the context is built.
    """

    url: str
    settings: Settings
    runtime: RuntimeConfig
    retention: Retention
    environ: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

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
        ``environ``. Raises SettingsError naming the first bad variable."""
        snapshot = MappingProxyType(dict(environ))
        return cls(
            url=url,
            settings=Settings.from_env(snapshot) if settings is None else settings,
            runtime=RuntimeConfig.from_env(snapshot) if runtime is None else runtime,
            retention=Retention.from_env(snapshot) if retention is None else retention,
            environ=snapshot,
        )
