"""Builds a producer's :class:`CostCalculator`: reads the override file and the clock, and
imports the custom cost model, which the pure pricing in :mod:`llmtap.analyzers.pricing` is
given rather than finding itself."""

from __future__ import annotations

import importlib
import logging
from datetime import UTC, datetime
from importlib import metadata
from typing import Final

from llmtap.analyzers.pricing import (
    CostCalculator,
    CostModel,
    Overrides,
    PricingError,
    parse_overrides,
)
from llmtap.settings import Settings

log = logging.getLogger(__name__)

COST_MODEL_ENV: Final = "LLMTAP_COST_MODEL"
#: The entry-point group a package publishes cost models under (``LLMTAP_COST_MODEL=<name>``).
COST_MODELS_GROUP: Final = "llmtap.cost_models"


def resolve_cost_model(spec: str) -> CostModel:
    """Return the cost model ``spec`` names: ``module:attribute`` or an entry-point name of
    ``llmtap.cost_models``. A class is instantiated with no arguments.

    Raises :class:`PricingError` naming LLMTAP_COST_MODEL when it cannot be imported, is not
    installed, or is not callable.
    """
    try:
        if ":" in spec:
            module, _, attribute = spec.partition(":")
            found: object = importlib.import_module(module)
            for part in attribute.split("."):
                found = getattr(found, part)
        else:
            points = metadata.entry_points(group=COST_MODELS_GROUP, name=spec)
            if not points:
                raise LookupError(f"no {COST_MODELS_GROUP} entry point is named {spec!r}")
            found = next(iter(points)).load()
        model = found() if isinstance(found, type) else found
    except Exception as exc:  # the user's module may raise anything at import
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        raise PricingError(f"{COST_MODEL_ENV}={spec}: cannot load: {reason}") from None
    if not callable(model):
        raise PricingError(f"{COST_MODEL_ENV}={spec}: {type(model).__name__} is not callable")
    return model  # type: ignore[no-any-return]


def _report_model_error(message: str) -> None:
    log.warning("llmtap: %s", message)


def read_overrides(path: str) -> Overrides:
    """Return the override rates in the JSON file ``path``.

    Raises :class:`PricingError` naming the path when it is missing, cannot be read or is not
    a valid override file; its message is the one line every process shows for that file.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PricingError(f"pricing overrides {path}: cannot read: {reason}") from exc
    return parse_overrides(path, raw)


def load_pricing(settings: Settings, now: datetime | None = None) -> CostCalculator:
    """Return a calculator for ``settings`` (prices file, cost model, Ollama rate) priced at
    ``now`` (default: the current time).

    Raises :class:`PricingError` for a bad prices file or cost model and ``ValueError`` for a
    bad Ollama rate.
    """
    path = settings.prices_file
    overrides = read_overrides(path) if path is not None else None
    model = resolve_cost_model(settings.cost_model) if settings.cost_model else None
    at = now if now is not None else datetime.now(tz=UTC)
    return CostCalculator(
        overrides,
        settings.ollama_usd_per_hour,
        at=at,
        model=model,
        on_model_error=_report_model_error,
    )


def pricing_or_catalogue(
    settings: Settings, now: datetime | None = None
) -> tuple[CostCalculator, PricingError | None]:
    """Return the producer's calculator and, when the prices file could not be used, its error.

    A bad prices file (missing, unreadable, malformed) or Ollama rate does not stop a
    producer: it prices from the catalogue alone, and the caller reports the error. Raises
    nothing for bad pricing settings.
    """
    try:
        return load_pricing(settings, now), None
    except PricingError as exc:
        error = exc
    except ValueError as exc:
        error = PricingError(f"pricing: {exc}")
    at = now if now is not None else datetime.now(tz=UTC)
    try:
        return CostCalculator(None, settings.ollama_usd_per_hour, at=at), error
    except ValueError:  # the Ollama rate was the bad setting
        return CostCalculator(None, 0.0, at=at), error
