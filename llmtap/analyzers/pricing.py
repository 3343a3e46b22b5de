"""Prices one LLM call in USD: rates are compiled once per (backend, model), then it is arithmetic.

Rates come from the genai-prices catalogue (resolved with its own model matching), or from
override rates, which win over the catalogue. This module does no I/O and reads no clock: the
override file's bytes and the pricing instant are passed in (:mod:`llmtap.producers.prices`
reads them).

Token semantics (OpenAI style, the same as genai-prices' ``Usage``, so the result equals
``genai_prices.calc_price(...).total_price``):

- ``input_tokens`` counts every prompt token, *including* the cache read and cache write tokens.
- ``cache_read_tokens`` and ``cache_write_tokens`` are the parts of ``input_tokens`` charged at
  the cache rates; the uncached input is ``input - cache_read - cache_write``, clamped at 0 (so
  Anthropic-style counts, where input excludes the cache, are charged only for the cache).
  A model without a cache rate in the catalogue charges those tokens at its input rate.
- ``output_tokens`` counts every completion token, *including* ``reasoning_tokens``. Reasoning is
  charged at the output rate unless the catalogue has a separate reasoning rate.
- Tiered (context-length) prices pick their tier from ``input_tokens``, the whole prompt: above a
  tier's threshold the tier's rate applies to every token of that kind, as genai-prices does.
- A per-request fee in the catalogue is charged once per call. Other units (web searches,
  audio hours, images, pages) are not recorded by llmtap and are not charged; a model priced
  only in such units is treated as unknown. A catalogue model listed without any price (free
  tiers, subscriptions) costs 0.

A custom cost model (:class:`CostModel`, named by ``LLMTAP_COST_MODEL`` and resolved by
:mod:`llmtap.producers.prices`) prices a call from its :class:`CallUsage` before the catalogue:
its answer wins, ``None`` falls back to the catalogue (or, with ``fallback = False``, leaves the
call unpriced). A model that raises or answers something that is not a finite USD amount >= 0
never reaches the caller: the call is unpriced (visible as ``unpriced_calls``), the failure is
counted in :attr:`CostCalculator.model_errors` and reported once through ``on_model_error``.
The pricing version names the model (``...+model-<name>``).

Prices that depend on the request time (a new price from a start date, or deepseek's
time-of-day discount) are read once, at the instant given as ``at``, and kept for the
calculator's life: build a new calculator to pick up a price change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Final, Protocol, runtime_checkable

import genai_prices
from genai_prices import data_snapshot
from genai_prices.data_snapshot import DataSnapshot
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices

__all__ = [
    "CallUsage",
    "CostCalculator",
    "CostModel",
    "Overrides",
    "PricingError",
    "Rates",
    "model_name",
    "parse_overrides",
]

#: Entries kept in the per-calculator cache; beyond it lookups are compiled but not stored, so a
#: stream of made-up model names cannot grow memory without bound.
CACHE_LIMIT: Final = 10_000

_PER_MILLION: Final = 1_000_000.0
_SECONDS_PER_HOUR: Final = 3600.0

#: llmtap backend names (and LiteLLM prefixes) that genai-prices does not map the way we want.
_PROVIDER_ALIASES: Final = {
    "azure": "azure",
    "azure_openai": "azure",
    "azure_ai": "azure",
    "aws": "aws",
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "fireworks_ai": "fireworks",
}
_OLLAMA_NAMES: Final = frozenset({"ollama", "ollama_chat"})
_LITELLM: Final = "litellm"

#: An ARN head ("arn:aws:bedrock:...:inference-profile/") and a cross-region prefix ("us.").
_BEDROCK_PREFIX: Final = re.compile(r"^(?:.*/)?(?:(?:us|eu|apac|jp|au|ca|in|us-gov|global)\.)?")
#: Bedrock version suffixes: "-v1:0", ":0", ":0:200k".
_BEDROCK_SUFFIX: Final = re.compile(r"(?:-v\d+)?(?::[0-9a-z]+)+$|-v\d+$")

#: The catalogue prices compiled into :class:`Rates`, and those that make a model priceable.
_CATALOGUE_FIELDS: Final = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "output_reasoning_mtok",
    "requests_kcount",
)
_CALL_PRICE_FIELDS: Final = ("input_mtok", "output_mtok", "requests_kcount")

_OVERRIDE_FIELDS: Final = frozenset(
    {"input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok", "per_hour"}
)


class PricingError(ValueError):
    """A bad override file: the message names the file, the entry and the reason."""


@dataclass(frozen=True, slots=True)
class Rates:
    """USD rates for one (backend, model): per million tokens, per request and per hour.

    ``tiers`` holds ``(threshold, rates)`` pairs, highest threshold first; a call whose
    ``input_tokens`` exceeds a threshold is priced entirely with that tier's rates.
    """

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    cache_read_per_mtok: float = 0.0
    cache_write_per_mtok: float = 0.0
    reasoning_per_mtok: float = 0.0
    per_request: float = 0.0
    per_hour: float = 0.0
    tiers: tuple[tuple[int, Rates], ...] = ()

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int,
        cache_write_tokens: int,
        reasoning_tokens: int,
        duration_s: float | None,
    ) -> float:
        """Return the USD cost of one call (never negative); see the module docstring."""
        r = self
        for threshold, tier in self.tiers:
            if input_tokens > threshold:
                r = tier
                break
        uncached = input_tokens - cache_read_tokens - cache_write_tokens
        if uncached < 0:
            uncached = 0
        if reasoning_tokens > output_tokens:
            reasoning_tokens = output_tokens
        usd = (
            uncached * r.input_per_mtok
            + cache_read_tokens * r.cache_read_per_mtok
            + cache_write_tokens * r.cache_write_per_mtok
            + (output_tokens - reasoning_tokens) * r.output_per_mtok
            + reasoning_tokens * r.reasoning_per_mtok
        ) / _PER_MILLION + r.per_request
        if r.per_hour and duration_s is not None and duration_s > 0.0:
            usd += duration_s * r.per_hour / _SECONDS_PER_HOUR
        return usd if usd > 0.0 else 0.0  # also turns NaN into 0.0


@dataclass(frozen=True, slots=True)
class Overrides:
    """Override rates keyed by canonical (backend, model), and a digest of the bytes they came
    from (it goes into the pricing version). Build it with :func:`parse_overrides`."""

    rates: Mapping[tuple[str, str], Rates] = field(default_factory=dict)
    digest: str = ""


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~1 us more to build per call
class CallUsage:
    """What a custom cost model prices: the call's backend, model, token counts (the module
    docstring's semantics) and duration, and :meth:`catalogue_usd`, the price the catalogue
    (and the prices file) would give, computed only when asked for."""

    backend: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    duration_s: float | None = None
    _catalogue: Callable[[CallUsage], float | None] | None = field(
        default=None, repr=False, compare=False
    )

    def catalogue_usd(self) -> float | None:
        """Return the catalogue's price of this call in USD, or None when it has none."""
        return None if self._catalogue is None else self._catalogue(self)


@runtime_checkable
class CostModel(Protocol):
    """A custom cost model: called with each call's usage, returns USD or None.

    Optional attributes: ``name`` (goes into the pricing version; default: the callable's
    qualified name) and ``fallback`` (default True: None means "ask the catalogue"; False:
    None means unpriced, the catalogue is never used).
    """

    def __call__(self, usage: CallUsage) -> float | None: ...


_MODEL_NAME: Final = re.compile(r"[^A-Za-z0-9._-]+")


def model_name(model: CostModel) -> str:
    """Return the name a model puts into the pricing version (``[A-Za-z0-9._-]``, 64 chars)."""
    raw = getattr(model, "name", None) or getattr(model, "__qualname__", None)
    name = _MODEL_NAME.sub("-", str(raw or type(model).__name__)).strip("-")
    return name[:64] or "model"


class _Failed(Exception):
    """A cost model's answer that is not a USD amount (reported like an exception)."""


def _no_report(message: str) -> None:
    """Report nothing (the default for a calculator without a reporter)."""


class CostCalculator:
    """Prices LLM calls from the genai-prices catalogue plus optional override rates.

    Backends: ``openai``, ``anthropic``; ``azure``/``azure_openai`` (Azure, then OpenAI);
    ``bedrock``/``aws`` (a Bedrock id genai-prices does not match is retried without its ARN
    head, region prefix and version suffix, so an unlisted ``global.`` profile gets the regional
    price); ``litellm`` (``"provider/model"`` strings, ``ollama/...`` included); ``ollama``
    (0 per token, or ``ollama_usd_per_hour`` times the call's duration). Any other backend is
    tried as a genai-prices provider id, then by genai-prices' guess from the model name.

    ``overrides`` (see :func:`parse_overrides`) win over the catalogue; ``model`` (a
    :class:`CostModel`) wins over both, see the module docstring. ``on_model_error`` gets one
    line the first time the model fails. ``at`` fixes the
    instant whose catalogue prices are used. ``catalogue`` is the genai-prices data (default:
    the snapshot genai-prices holds in memory, bundled or auto-updated). The lookup cache is a
    plain dict, so one calculator can be shared between threads (a race compiles twice).
    Raises ``ValueError`` for a negative or non-finite ``ollama_usd_per_hour``.
    """

    def __init__(
        self,
        overrides: Overrides | None = None,
        ollama_usd_per_hour: float = 0.0,
        *,
        at: datetime,
        catalogue: DataSnapshot | None = None,
        model: CostModel | None = None,
        on_model_error: Callable[[str], None] = _no_report,
    ) -> None:
        self._snapshot = catalogue if catalogue is not None else data_snapshot.get_snapshot()
        self._at = at
        self._ollama = Rates(per_hour=_check_rate(ollama_usd_per_hour, "ollama_usd_per_hour"))
        self._cache: dict[tuple[str, str], Rates | None] = {}
        self._overrides: Mapping[tuple[str, str], Rates] = {}
        self.version = f"genai-prices-{genai_prices.__version__}"
        if self._snapshot.from_auto_update:
            self.version += f"+update-{self._snapshot.timestamp:%Y%m%dT%H%M%S}"
        if overrides is not None:
            self._overrides = overrides.rates
            self.version += f"+overrides-{overrides.digest}"
        self._model = model
        self._fallback = bool(getattr(model, "fallback", True))
        self._report = on_model_error
        #: Calls the model failed to price (it raised, or answered no valid amount).
        self.model_errors = 0
        if model is not None:
            self.version += f"+model-{model_name(model)}"

    def cost(
        self,
        backend: str,
        model: str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        duration_s: float | None = None,
    ) -> float | None:
        """Return the call's cost in USD, or ``None`` when the model has no known price.

        Never raises: unusable input (an unhashable name, a non-numeric or overflowing count)
        gives ``None``, and so does a custom model that fails (counted in ``model_errors``).
        """
        if self._model is not None:
            usage = CallUsage(
                backend,
                model,
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_write_tokens,
                reasoning_tokens,
                duration_s,
                self._catalogue_cost,
            )
            return self._modelled(usage)
        try:
            rates = self._cache[(backend, model)]
        except KeyError:
            rates = self.rates(backend, model)
        except TypeError:
            return None
        if rates is None:
            return None
        try:
            return rates.cost(
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_write_tokens,
                reasoning_tokens,
                duration_s,
            )
        except (TypeError, ArithmeticError):
            return None

    def _modelled(self, usage: CallUsage) -> float | None:
        """Price with the custom model; None falls back to the catalogue (when allowed)."""
        model = self._model
        assert model is not None
        try:
            usd = model(usage)
            if usd is None:
                return self._catalogue_cost(usage) if self._fallback else None
            if isinstance(usd, bool) or not isinstance(usd, int | float):
                raise _Failed(f"answered {type(usd).__name__}, not a USD amount")
            value = float(usd)
            if not math.isfinite(value) or value < 0:
                raise _Failed(f"answered {value!r}, not a finite USD amount >= 0")
        except Exception as exc:  # the user's model may raise anything: contain it
            self.model_errors += 1
            if self.model_errors == 1:
                self._report_failure(exc)
            return None
        return value

    def _report_failure(self, exc: Exception) -> None:
        with contextlib.suppress(Exception):  # nor may a failing reporter reach the call
            name = model_name(self._model) if self._model is not None else "model"
            text = str(exc).splitlines()[0][:200] if str(exc) else ""
            kind = "" if isinstance(exc, _Failed) else f"{type(exc).__name__}: "
            self._report(
                f"cost model {name} failed ({kind}{text}); such calls are unpriced and "
                "counted (reported once)"
            )

    def _catalogue_cost(self, usage: CallUsage) -> float | None:
        """Return the catalogue's (and prices file's) price of ``usage``, or None."""
        rates = self.rates(usage.backend, usage.model)
        if rates is None:
            return None
        try:
            return rates.cost(
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
                usage.reasoning_tokens,
                usage.duration_s,
            )
        except (TypeError, ArithmeticError):
            return None

    def is_known(self, backend: str, model: str) -> bool:
        """Return whether ``cost`` can price this (backend, model)."""
        return self.rates(backend, model) is not None

    def rates(self, backend: str, model: str) -> Rates | None:
        """Return the compiled rates for (backend, model), or ``None`` when unknown (cached)."""
        key = (backend, model)
        try:
            return self._cache[key]
        except KeyError:
            pass
        except TypeError:
            return None
        compiled = None
        if isinstance(backend, str) and isinstance(model, str):
            compiled = self._compile(backend, model)
        if len(self._cache) < CACHE_LIMIT:
            self._cache[key] = compiled
        return compiled

    def _compile(self, backend: str, model: str) -> Rates | None:
        name = _canonical_backend(backend)
        ref = _canonical_model(name, model)
        override = self._overrides.get((name, ref))
        if override is not None:
            return override
        if name == "ollama":
            return self._ollama
        if name == _LITELLM and "/" in ref:
            prefix, rest = ref.split("/", 1)
            if self._is_backend(prefix):
                return self._compile(prefix, rest)
        found = self._find(name, ref)
        if found is None:
            return None
        return _compile_price(found[1].get_prices(self._at))

    def _is_backend(self, name: str) -> bool:
        name = _canonical_backend(name)
        if name == "ollama" or name in _PROVIDER_ALIASES.values():
            return True
        return data_snapshot.find_provider_by_id(self._snapshot.providers, name) is not None

    def _find(self, backend: str, ref: str) -> tuple[Provider, ModelInfo] | None:
        for provider_id, candidate in _candidates(backend, ref):
            try:
                return self._snapshot.find_provider_model(candidate, None, provider_id, None)
            except LookupError:
                continue
        return None


def _canonical_backend(backend: str) -> str:
    name = backend.strip().lower()
    if name in _OLLAMA_NAMES:
        return "ollama"
    return _PROVIDER_ALIASES.get(name, name)


def _canonical_model(backend: str, model: str) -> str:
    ref = model.strip().lower()
    if backend == "ollama" and ref.endswith(":latest"):
        return ref[: -len(":latest")]
    return ref


def _candidates(backend: str, ref: str) -> Iterator[tuple[str | None, str]]:
    """Yield the (provider id, model ref) pairs to try, best first."""
    if not ref:
        return
    if backend == "azure":
        yield "azure", ref
        yield "openai", ref
    elif backend == "aws":
        yield from _bedrock_candidates(ref)
    elif backend in ("openai", "anthropic", _LITELLM):
        yield backend, ref
    else:
        yield backend, ref
        yield None, ref


def _bedrock_candidates(ref: str) -> Iterator[tuple[str | None, str]]:
    unprefixed = _BEDROCK_PREFIX.sub("", ref)
    tried: set[str] = set()
    for candidate in (ref, unprefixed, _BEDROCK_SUFFIX.sub("", unprefixed)):
        if candidate and candidate not in tried:
            tried.add(candidate)
            yield "aws", candidate


def _compile_price(price: ModelPrice) -> Rates | None:
    """Turn a catalogue price into :class:`Rates`.

    A price with no fields at all is a free model (zero rates); ``None`` means the model is
    priced only in units llmtap does not record (audio hours, pages, characters).
    """
    fields = {key: getattr(price, key, None) for key in _CATALOGUE_FIELDS}
    priced = {key for key, value in vars(price).items() if value is not None}
    if priced and all(fields[key] is None for key in _CALL_PRICE_FIELDS):
        return None
    thresholds = sorted(
        {t.start for v in fields.values() if isinstance(v, TieredPrices) for t in v.tiers},
        reverse=True,
    )
    base = _band(fields, None)
    tiers = tuple((threshold, _band(fields, threshold)) for threshold in thresholds)
    return replace(base, tiers=tiers)


def _band(fields: Mapping[str, Decimal | TieredPrices | None], threshold: int | None) -> Rates:
    """Rates for calls whose input exceeds ``threshold`` (``None``: below every tier)."""
    inp = _rate_at(fields["input_mtok"], threshold, 0.0)
    out = _rate_at(fields["output_mtok"], threshold, 0.0)
    return Rates(
        input_per_mtok=inp,
        output_per_mtok=out,
        cache_read_per_mtok=_rate_at(fields["cache_read_mtok"], threshold, inp),
        cache_write_per_mtok=_rate_at(fields["cache_write_mtok"], threshold, inp),
        reasoning_per_mtok=_rate_at(fields["output_reasoning_mtok"], threshold, out),
        per_request=_rate_at(fields["requests_kcount"], threshold, 0.0) / 1000.0,
    )


def _rate_at(price: Decimal | TieredPrices | None, threshold: int | None, default: float) -> float:
    if price is None:
        return default
    if not isinstance(price, TieredPrices):
        return float(price)
    chosen = price.base
    if threshold is not None:
        for tier in price.tiers:  # ascending: keep the last tier at or below the threshold
            if tier.start <= threshold:
                chosen = tier.price
    return float(chosen)


def parse_overrides(path: str, raw: bytes) -> Overrides:
    """Return the override rates in ``raw``, the bytes of the override file ``path``.

    The file is a JSON object keyed ``"backend/model"`` (case-insensitive) whose values hold
    any of ``input_per_mtok``, ``output_per_mtok``, ``cache_read_per_mtok``,
    ``cache_write_per_mtok`` (both default to the input rate) and ``per_hour``. Raises
    :class:`PricingError` naming ``path``, the entry at fault and the reason.
    """
    rates = _parse_document(path, raw)
    return Overrides(rates, hashlib.sha256(raw).hexdigest()[:12])


def _parse_document(path: str, raw: bytes) -> dict[tuple[str, str], Rates]:
    try:
        document = json.loads(
            raw, parse_constant=_reject_constant, object_pairs_hook=_reject_duplicates
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise PricingError(f"pricing overrides {path}: not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise PricingError(f"pricing overrides {path}: the top level must be a JSON object")
    overrides: dict[tuple[str, str], Rates] = {}
    for key, entry in document.items():
        try:
            parsed_key = _parse_key(key)
            if parsed_key in overrides:
                raise ValueError("duplicates another entry (names are case-insensitive)")
            overrides[parsed_key] = _parse_entry(entry)
        except ValueError as exc:
            raise PricingError(f"pricing overrides {path}: entry {key!r}: {exc}") from exc
    return overrides


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    document: dict[str, object] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"duplicate key {key!r}")
        document[key] = value
    return document


def _parse_key(key: str) -> tuple[str, str]:
    backend, _, model = key.partition("/")
    name = _canonical_backend(backend)
    ref = _canonical_model(name, model)
    if not name or not ref:
        raise ValueError('the name must be "backend/model"')
    return name, ref


def _parse_entry(entry: object) -> Rates:
    if not isinstance(entry, dict):
        raise ValueError("the value must be a JSON object of rates")
    unknown = sorted(set(entry) - _OVERRIDE_FIELDS)
    if unknown:
        accepted = ", ".join(sorted(_OVERRIDE_FIELDS))
        raise ValueError(f"unknown field {unknown[0]!r} (accepted: {accepted})")
    if not entry:
        raise ValueError("no rates given")
    values = {field: _check_rate(value, field) for field, value in entry.items()}
    inp = values.get("input_per_mtok", 0.0)
    out = values.get("output_per_mtok", 0.0)
    return Rates(
        input_per_mtok=inp,
        output_per_mtok=out,
        cache_read_per_mtok=values.get("cache_read_per_mtok", inp),
        cache_write_per_mtok=values.get("cache_write_per_mtok", inp),
        reasoning_per_mtok=out,
        per_hour=values.get("per_hour", 0.0),
    )


def _check_rate(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field} must be a number, not {value!r}")
    try:
        rate = float(value)
    except OverflowError:
        rate = math.inf
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(f"{field} must be a finite number >= 0, not {value!r}")
    return rate
