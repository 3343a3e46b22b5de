"""The v1 wire schema: call and rollup events, and the one place that packs and unpacks them.

Each stream entry holds one field: ``e`` (one msgpack map) or ``b`` (a msgpack array of maps,
written when the publisher has several events queued). Every map carries ``v`` (the schema
version) and ``t`` (the event type). In a ``b`` array, a ``t = "calls"`` map (a
:class:`CallGroup`) is the compact form of several call events: the fields they share once
(``base``) and, per call, an array of the fields that vary (``rows``, see :data:`ROW_FIELDS`);
it decodes into the same :class:`CallEvent` values as the maps it stands for. Decoding is
strict: unknown versions or types, missing fields, wrong types, NaN/inf and negative numbers
raise :class:`EventError`, which keeps the raw bytes for the dead-letter stream. A call event
without ``latency`` gets ``end_time - start_time``. The same schema, for producers in other
languages, is the JSON Schema file ``llmtap/schema/events.v1.json`` (:func:`json_schema`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Annotated, Any, Final, Literal, TypeAlias, cast

import msgspec

from llmtap import keys

VERSION: Final = 1
SCHEMA_FILE: Final = "schema/events.v1.json"  # package data, beside this module
REASONS: Final = ("sampled", "error", "slow", "breaker", "expensive")

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Label = Annotated[str, msgspec.Meta(max_length=256)]
MAX_SECONDS: Final = 1e7
Seconds = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_SECONDS)]
_MAX_TIMESTAMP: Final = 1e11
Timestamp = Annotated[float, msgspec.Meta(ge=0.0, le=_MAX_TIMESTAMP)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**62)]
Usd = Annotated[float, msgspec.Meta(ge=0.0, le=1e9)]
Rate = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
SamplingRate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Tags = Annotated[dict[Label, Label], msgspec.Meta(max_length=64)]
Reason = Literal["sampled", "error", "slow", "breaker", "expensive"]
# The default of an absent ``latency``: out of range on purpose, so no producer can send it,
# and replaced by ``end_time - start_time`` as the event is built (decoded or constructed).
_DERIVED: Final = -1.0


class CallEvent(msgspec.Struct, tag_field="t", tag="call", kw_only=True, omit_defaults=True):
    """One profiled LLM call (the original ``LLMCallMetrics`` plus what the analyzers need).

    Times are in seconds; ``start_time``/``end_time`` are Unix timestamps and ``latency`` is
    measured with a monotonic clock. A producer may leave ``latency`` out (the documented wire
    format does not require it): it is then ``end_time - start_time``. Optional timings are
    ``None`` when unknown.
    """

    v: Literal[1]
    call_id: Name
    producer_id: Name
    backend: Name
    model_name: Name
    start_time: Timestamp
    end_time: Timestamp
    success: bool
    sample_rate: Rate
    reason: Reason
    latency: Seconds = _DERIVED
    session_id: Label | None = None
    tenant: Label | None = None
    thread_name: Label = ""
    network_latency: Seconds | None = None
    processing_time: Seconds | None = None
    ttft: Seconds | None = None
    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_read_tokens: Count = 0
    cache_write_tokens: Count = 0
    reasoning_tokens: Count = 0
    estimated_cost_usd: Usd | None = None
    pricing_version: Label = ""
    error_type: Label | None = None
    retry_count: Count = 0
    circuit_breaker_triggered: bool = False
    circuit_breaker_state: Label | None = None
    memory_peak_bytes: Count | None = None
    streaming: bool = False
    prompt_hash: Label | None = None
    prompt_chars: Count | None = None
    tags: Tags = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.end_time < self.start_time:
            raise ValueError("end_time is before start_time")
        if self.latency == _DERIVED:
            derived = self.end_time - self.start_time
            if derived > MAX_SECONDS:
                raise ValueError(f"latency (end_time - start_time) is over {MAX_SECONDS:g} s")
            self.latency = derived

    @property
    def output_tokens_per_s(self) -> float | None:
        """Output tokens per second of generation (after the first token when streaming)."""
        span = self.latency - (self.ttft or 0.0)
        if self.output_tokens <= 0 or span <= 0:
            return None
        return self.output_tokens / span


class RollupRow(msgspec.Struct, kw_only=True, array_like=False):
    """Exact counters for one (backend, model, session, tenant) over one rollup window.

    ``cost_nanousd`` is the sum of each call's cost rounded to 1e-9 USD, so totals add up
    exactly in any order; ``unpriced_calls`` counts calls whose model has no known price.
    """

    backend: Name
    model: Name
    session: Label | None = None
    tenant: Label | None = None
    calls: Count = 0
    errors: Count = 0
    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_read_tokens: Count = 0
    cache_write_tokens: Count = 0
    reasoning_tokens: Count = 0
    cost_nanousd: Count = 0
    unpriced_calls: Count = 0


class ProducerStats(msgspec.Struct, kw_only=True):
    """A producer's cumulative statistics since it started, and the settings it runs with.

    ``enabled``, ``level`` (the effective level) and ``sampling_rate`` are optional: a producer
    that does not send them (an older or third-party one) leaves them ``None``.
    """

    total_calls: Count = 0
    profiled_calls: Count = 0
    dropped_events: Count = 0
    unpriced_calls: Count = 0
    bad_runtime_settings: Count = 0
    enabled: bool | None = None
    level: Label | None = None
    sampling_rate: SamplingRate | None = None


class RollupEvent(msgspec.Struct, tag_field="t", tag="rollup", kw_only=True):
    """Every call a producer saw in ``[window_start, window_end)``, sampled or not.

    ``seq`` grows by one per rollup of a producer; consumers count (producer_id, seq) once.
    """

    v: Literal[1]
    producer_id: Name
    seq: Count
    window_start: Timestamp
    window_end: Timestamp
    rows: list[RollupRow]
    stats: ProducerStats

    def __post_init__(self) -> None:
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")


Event: TypeAlias = CallEvent | RollupEvent

#: The fields of one call in a :class:`CallGroup` row, in order (``end_time`` is derived:
#: ``start_time + latency``). Trailing fields may be left out; ``nil`` is the default.
ROW_FIELDS: Final = (
    "call_id", "start_time", "latency", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "estimated_cost_usd", "ttft", "network_latency",
    "processing_time",
)  # fmt: skip


class CallRow(msgspec.Struct, array_like=True):
    """What varies from call to call in a group: a msgpack array in :data:`ROW_FIELDS` order."""

    call_id: Name
    start_time: Timestamp
    latency: Seconds
    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_read_tokens: Count = 0
    cache_write_tokens: Count = 0
    reasoning_tokens: Count = 0
    estimated_cost_usd: Usd | None = None
    ttft: Seconds | None = None
    network_latency: Seconds | None = None
    processing_time: Seconds | None = None


class CallBase(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The fields every call of a group shares: those of :class:`CallEvent` not in a row."""

    producer_id: Name
    backend: Name
    model_name: Name
    success: bool
    sample_rate: Rate
    reason: Reason
    session_id: Label | None = None
    tenant: Label | None = None
    thread_name: Label = ""
    pricing_version: Label = ""
    error_type: Label | None = None
    retry_count: Count = 0
    circuit_breaker_triggered: bool = False
    circuit_breaker_state: Label | None = None
    memory_peak_bytes: Count | None = None
    streaming: bool = False
    prompt_hash: Label | None = None
    prompt_chars: Count | None = None
    tags: Tags = msgspec.field(default_factory=dict)


class CallGroup(msgspec.Struct, tag_field="t", tag="calls", kw_only=True):
    """Call events that share every field but those of a row (the compact form, in ``b``)."""

    v: Literal[1]
    base: CallBase
    rows: Annotated[list[CallRow], msgspec.Meta(min_length=1)]


class _LooseGroup(msgspec.Struct, tag_field="t", tag="calls"):
    """A group split into its parts, to find which rows of a bad group are bad."""

    v: Any
    base: msgspec.Raw
    rows: list[msgspec.Raw]


class EventError(ValueError):
    """An event that cannot be used. ``raw`` holds its bytes; ``reason`` says why."""

    def __init__(self, reason: str, raw: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


class MalformedEvent(EventError):
    """The bytes are not a msgpack value of the expected shape."""


class InvalidEvent(EventError):
    """Well-formed msgpack that breaks the schema (type, version, field, range)."""


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(CallEvent | RollupEvent)
_ITEM_DECODER: Final = msgspec.msgpack.Decoder(CallEvent | RollupEvent | CallGroup)
_LOOSE_GROUP_DECODER: Final = msgspec.msgpack.Decoder(_LooseGroup)
_BASE_DECODER: Final = msgspec.msgpack.Decoder(CallBase)
_ROW_DECODER: Final = msgspec.msgpack.Decoder(CallRow)
_BATCH_DECODER: Final = msgspec.msgpack.Decoder(list[msgspec.Raw])
_TYPED_BATCH_DECODER: Final = msgspec.msgpack.Decoder(list[CallEvent | RollupEvent | CallGroup])
# A group's map without its rows: {"t": "calls", "v": 1, "base": <base>, "rows": <rows>}.
_GROUP_HEAD: Final = b"\x84\xa1t\xa5calls\xa1v\x01\xa4base"
_ROWS_KEY: Final = b"\xa4rows"


def encode(event: Event) -> bytes:
    """Return the msgpack map of one event."""
    return _ENCODER.encode(event)


def encode_batch(events: Sequence[Event]) -> bytes:
    """Return a msgpack array of event maps, the value of a ``b`` field."""
    return _ENCODER.encode(events)


def encode_base(base: CallBase) -> bytes:
    """Return the msgpack map of a group's shared fields (encode it once, reuse it per group)."""
    return _ENCODER.encode(base)


def encode_group(base: bytes, rows: Sequence[Sequence[Any]]) -> bytes:
    """Return one ``t = "calls"`` map (an item of a ``b`` array) from an encoded base and rows.

    Each row holds the values of :data:`ROW_FIELDS` in order (as tuples or lists).
    """
    return b"".join((_GROUP_HEAD, base, _ROWS_KEY, _ENCODER.encode(rows)))


_BASE_FIELDS: Final = tuple(f.name for f in msgspec.structs.fields(CallBase))


def split_call(event: CallEvent) -> tuple[CallBase, tuple[Any, ...]]:
    """Return a call event as a group's (base, row); the group decodes back to an equal event
    when ``end_time == start_time + latency`` (as the Python producers write it)."""
    base = CallBase(**{name: getattr(event, name) for name in _BASE_FIELDS})
    return base, tuple(getattr(event, name) for name in ROW_FIELDS)


def join_batch(encoded: Sequence[bytes]) -> bytes:
    """Return a ``b`` value from events already encoded one by one (no re-encoding)."""
    n = len(encoded)
    if n < 16:
        header = bytes((0x90 | n,))
    elif n < 0x10000:
        header = b"\xdc" + n.to_bytes(2, "big")
    else:
        header = b"\xdd" + n.to_bytes(4, "big")
    return b"".join((header, *encoded))  # one copy


def decode(raw: bytes) -> Event:
    """Decode and validate one event map. Raises MalformedEvent or InvalidEvent."""
    try:
        event: Event = _DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(str(exc), bytes(raw)) from None
    except msgspec.DecodeError as exc:
        raise MalformedEvent(str(exc), bytes(raw)) from None
    return event


def decode_entry(fields: Mapping[bytes, bytes]) -> list[Event | EventError]:
    """Decode one stream entry into its events, each either an Event or the EventError it raised.

    A ``b`` array is split first, so one bad event in a batch does not spoil its neighbours.
    """
    single = fields.get(keys.FIELD_EVENT)
    if single is not None:
        return [_decode_or_error(single)]
    batch = fields.get(keys.FIELD_BATCH)
    if batch is None:
        names = b",".join(sorted(fields))[:200]
        return [MalformedEvent(f"entry has neither field 'e' nor 'b' (fields: {names!r})", b"")]
    try:
        decoded: list[Event | CallGroup] = _TYPED_BATCH_DECODER.decode(batch)
    except msgspec.DecodeError:
        return _decode_parts(batch)  # find the bad ones one by one: each is its own error
    for item in decoded:
        if type(item) is CallGroup:
            return _expand_groups(decoded, batch)
    return cast(list[Event | EventError], decoded)  # the common case: all valid, one call


def _decode_parts(batch: bytes) -> list[Event | EventError]:
    try:
        parts = _BATCH_DECODER.decode(batch)
    except msgspec.DecodeError as exc:
        return [MalformedEvent(f"batch is not a msgpack array: {exc}", bytes(batch))]
    out: list[Event | EventError] = []
    for part in parts:
        raw = bytes(part)
        try:
            item = _ITEM_DECODER.decode(raw)
        except msgspec.DecodeError:
            out.extend(_bad_group(raw) or [_decode_or_error(raw)])
            continue
        if type(item) is CallGroup:
            out.extend(_expand(item, raw))
        else:
            out.append(cast(Event, item))
    return out


def _expand_groups(decoded: list[Event | CallGroup], batch: bytes) -> list[Event | EventError]:
    out: list[Event | EventError] = []
    for item in decoded:
        if type(item) is CallGroup:
            out.extend(_expand(item, batch))
        else:
            out.append(cast(Event, item))
    return out


def _expand(group: CallGroup, raw: bytes) -> list[Event | EventError]:
    """Return a group's call events: its base with each row's values (end = start + latency)."""
    proto = CallEvent(
        v=VERSION, call_id="-", start_time=0.0, end_time=0.0, latency=0.0,
        **msgspec.structs.asdict(group.base),
    )  # fmt: skip
    replace = msgspec.structs.replace
    out: list[Event | EventError] = []
    for row in group.rows:
        start, latency = row.start_time, row.latency
        end = start + latency
        if end > _MAX_TIMESTAMP:
            out.append(InvalidEvent("end_time (start_time + latency) is out of range", raw))
            continue
        out.append(
            replace(
                proto, call_id=row.call_id, start_time=start, end_time=end, latency=latency,
                input_tokens=row.input_tokens, output_tokens=row.output_tokens,
                cache_read_tokens=row.cache_read_tokens,
                cache_write_tokens=row.cache_write_tokens,
                reasoning_tokens=row.reasoning_tokens,
                estimated_cost_usd=row.estimated_cost_usd, ttft=row.ttft,
                network_latency=row.network_latency, processing_time=row.processing_time,
            )
        )  # fmt: skip
    return out


def _bad_group(raw: bytes) -> list[Event | EventError] | None:
    """Return the events and errors of a group that does not validate, one per row (None if
    ``raw`` is not a group at all). A bad base or version spoils every row of the group."""
    try:
        loose = _LOOSE_GROUP_DECODER.decode(raw)
    except msgspec.DecodeError:
        return None
    if loose.v != VERSION:
        return [InvalidEvent(f"unsupported group version {loose.v!r}", raw)]
    try:
        base = _BASE_DECODER.decode(loose.base)
    except msgspec.DecodeError as exc:
        return [InvalidEvent(f"group base: {exc}", raw)]
    if not loose.rows:
        return [InvalidEvent("group has no rows", raw)]
    out: list[Event | EventError] = []
    for part in loose.rows:
        one = encode_group(bytes(loose.base), [msgspec.Raw(part)])  # the bad row alone
        try:
            row = _ROW_DECODER.decode(part)
        except msgspec.DecodeError as exc:
            out.append(InvalidEvent(f"group row: {exc}", one))
            continue
        out.extend(_expand(CallGroup(v=VERSION, base=base, rows=[row]), one))
    return out


def _decode_or_error(raw: bytes) -> Event | EventError:
    try:
        return decode(raw)
    except EventError as exc:
        return exc


def json_schema() -> dict[str, Any]:
    """Return the v1 wire format as a JSON Schema (draft 2020-12) document.

    Its root describes one event (an ``e`` value); ``$defs/batch`` describes a ``b`` value.
    """
    text = resources.files("llmtap").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
