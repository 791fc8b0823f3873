"""The event model, derived from the Avro schemas in `schemas/` (the one source of truth).

An event travels through the pipeline as a plain dict, the *normalised event*. Its keys are the
fields of its type's schema plus `event_type`, always all of them, with `None` (or `{}`/`[]`) for
absent values. Example, a Wi-Fi check-in after the first hop:

    {"event_type": "wifi_checkin", "event_id": "gw7-000123", "occurred_at": 1795312800000,
     "channel": "wifi", "source_id": "gw7", "member_id": None, "device_id": None,
     "wifi_mac_hash": "3f1c...", "phone_hash": None, "store_id": "sh-001",
     "consent_marketing": None, "properties": {}, "kind": "associate", "ap_id": "ap-3", "rssi": -61}

Raw `wifi_mac` / `phone` exist only between validation and hashing at the first hop: a normalised
event carries such a key only when a raw value arrived, and `privacy.hash_identifiers` removes it.

Canonical JSON (the file and HTTP input format, and `to_json_line` output) is one object per line
with the same keys; `occurred_at` is ISO-8601 with an offset (`2026-11-22T10:00:00+08:00`, `...Z`)
or integer epoch milliseconds. `pipeline.validation` turns canonical JSON into normalised events.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any

import orjson

EVENT_TYPES: tuple[str, ...] = ("browse", "wifi_checkin", "purchase", "share", "complaint")
OUTPUT_SCHEMAS: tuple[str, ...] = ("dead_letter", "session_update", "visit_update", "person_merge", "trigger",
                                   "trigger_decision", "resolved_events")
EVENT_ID_MAX_LEN = 64

# Identifiers that make an event attributable to a person; at least one is required.
IDENTITY_FIELDS: tuple[str, ...] = ("member_id", "device_id", "wifi_mac_hash", "phone_hash")
# Raw identifiers accepted at the first hop only, and the hashed field each one becomes.
RAW_IDENTIFIER_FIELDS: dict[str, str] = {"wifi_mac": "wifi_mac_hash", "phone": "phone_hash"}

_SCHEMA_PACKAGE = "schemas"
_VERSION_ATTRIBUTE = "o2o_version"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One schema field, reduced to what validation and serialisation need."""

    name: str
    kind: str  # 'string', 'int', 'long', 'boolean', 'enum', 'map', 'array'
    nullable: bool
    required: bool  # no default in the schema: the producer must send it
    default: Any
    symbols: tuple[str, ...] = ()  # enum vocabulary
    items: tuple["FieldSpec", ...] = ()  # record fields of an array's items


def load_schema_text(name: str, version: int | None = None) -> str:
    """The .avsc text of `name` (e.g. 'browse'); `version` reads `history/<name>.v<version>.avsc`."""
    root = resources.files(_SCHEMA_PACKAGE)
    path = root / f"{name}.avsc" if version is None else root / "history" / f"{name}.v{version}.avsc"
    return path.read_text(encoding="utf-8")


def load_schema(name: str, version: int | None = None) -> dict[str, Any]:
    """The Avro schema of `name` as a JSON dict (current, or a kept history version)."""
    return json.loads(load_schema_text(name, version))


def schema_version(schema: dict[str, Any]) -> int:
    """The version a schema file declares in its `o2o_version` attribute."""
    return int(schema[_VERSION_ATTRIBUTE])


def history_versions(name: str) -> list[int]:
    """Versions of `name` kept in `schemas/history/`, ascending."""
    prefix, suffix = f"{name}.v", ".avsc"
    found = []
    for entry in resources.files(_SCHEMA_PACKAGE).joinpath("history").iterdir():
        file_name = entry.name
        if file_name.startswith(prefix) and file_name.endswith(suffix):
            number = file_name[len(prefix) : -len(suffix)]
            if number.isdigit():
                found.append(int(number))
    return sorted(found)


def field_specs(schema: dict[str, Any]) -> tuple[FieldSpec, ...]:
    """FieldSpecs of a record schema, in schema order."""
    return tuple(_field_spec(field) for field in schema["fields"])


def _field_spec(field: dict[str, Any]) -> FieldSpec:
    avro_type = field["type"]
    nullable = isinstance(avro_type, list) and "null" in avro_type
    if isinstance(avro_type, list):
        (avro_type,) = [t for t in avro_type if t != "null"]
    kind = avro_type if isinstance(avro_type, str) else avro_type["type"]
    symbols: tuple[str, ...] = ()
    items: tuple[FieldSpec, ...] = ()
    if kind == "enum":
        symbols = tuple(avro_type["symbols"])
    elif kind == "array":
        items = field_specs(avro_type["items"])
    elif kind == "long" and isinstance(avro_type, dict) and avro_type.get("logicalType") == "timestamp-millis":
        kind = "timestamp_ms"
    has_default = "default" in field
    return FieldSpec(
        name=sys.intern(field["name"]),  # the core reads events by these keys: equal by identity, no compare
        kind=kind,
        nullable=nullable,
        required=not has_default,
        default=field.get("default"),
        symbols=symbols,
        items=items,
    )


def _load_event_model() -> tuple[dict[str, dict[str, Any]], dict[str, tuple[FieldSpec, ...]]]:
    schemas = {event_type: load_schema(event_type) for event_type in EVENT_TYPES}
    return schemas, {event_type: field_specs(schema) for event_type, schema in schemas.items()}


def _common_prefix(specs_by_type: dict[str, tuple[FieldSpec, ...]]) -> tuple[str, ...]:
    """The leading fields every event schema shares, identically (event_id .. properties)."""
    columns = zip(*specs_by_type.values())
    common: list[str] = []
    for column in columns:
        if any(spec != column[0] for spec in column):
            break
        common.append(column[0].name)
    return tuple(common)


SCHEMAS, SPECS = _load_event_model()
# Record full name (as a schema registry knows it) -> event type, e.g. 'o2o.WifiCheckin' -> 'wifi_checkin'.
RECORD_NAMES: dict[str, str] = {f"{s['namespace']}.{s['name']}": t for t, s in SCHEMAS.items()}
COMMON_FIELDS: tuple[str, ...] = _common_prefix(
    {t: tuple(s for s in specs if s.name not in RAW_IDENTIFIER_FIELDS) for t, specs in SPECS.items()}
)
# Fields of each type beyond the common ones, without the raw identifiers.
TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    t: tuple(s.name for s in specs if s.name not in COMMON_FIELDS and s.name not in RAW_IDENTIFIER_FIELDS)
    for t, specs in SPECS.items()
}
# Keys of a normalised event of each type, in a stable order.
EVENT_KEYS: dict[str, tuple[str, ...]] = {t: ("event_type", *COMMON_FIELDS, *TYPE_FIELDS[t]) for t in EVENT_TYPES}
ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    (t, s.name): s.symbols for t, specs in SPECS.items() for s in specs if s.kind == "enum"
}


# --- occurred_at --------------------------------------------------------------------------------

def parse_occurred_at(value: Any) -> int:
    """Epoch milliseconds from int epoch ms or an ISO-8601 string with an offset.

    Raises ValueError with a sentence saying what to send instead.
    """
    if type(value) is int:
        return value
    if type(value) is str:
        return _parse_iso_ms(value)
    raise ValueError(
        f"occurred_at must be an ISO-8601 string with an offset or integer epoch milliseconds, "
        f"got {type(value).__name__}"
    )


def _parse_iso_ms(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            "occurred_at is not an ISO-8601 timestamp; send e.g. '2026-11-22T10:00:00+08:00' or epoch milliseconds"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(
            "occurred_at has no UTC offset; add one (e.g. '+08:00' or 'Z') so the event time is unambiguous"
        )
    return _datetime_to_ms(moment)


def _datetime_to_ms(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DAY_MS = 86_400_000
_DATES: dict[int, str] = {}  # day number since the epoch -> 'YYYY-MM-DD', for format_occurred_at


def format_occurred_at(epoch_ms: int) -> str:
    """ISO-8601 in UTC with milliseconds and 'Z', e.g. '2026-11-22T02:00:00.000Z'.

    The date is formatted once per day and the time of day by arithmetic: a dry run formats four
    times per session and visit, and strftime took 4 us a time (a third of building its report)."""
    day, ms_of_day = divmod(epoch_ms, _DAY_MS)
    date = _DATES.get(day)
    if date is None:
        if len(_DATES) >= 10_000:
            _DATES.clear()
        date = _DATES[day] = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")
    seconds, ms = divmod(ms_of_day, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{date}T{hour:02d}:{minute:02d}:{second:02d}.{ms:03d}Z"


# --- canonical JSON -----------------------------------------------------------------------------

def to_json_line(event: dict[str, Any]) -> str:
    """Canonical JSON of a normalised event: schema key order, nulls and empty defaults left out.

    `validation.validate(json.loads(to_json_line(e)), ...)` gives `e` back.
    """
    out: dict[str, Any] = {}
    for key in EVENT_KEYS[event["event_type"]]:
        value = event.get(key)
        if value is None or value == {} or value == []:
            continue
        out[key] = format_occurred_at(value) if key == "occurred_at" else value
    for raw_key in RAW_IDENTIFIER_FIELDS:
        if event.get(raw_key) is not None:
            out[raw_key] = event[raw_key]
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def parse_json_line(line: str | bytes) -> dict[str, Any]:
    """One canonical JSON line as a dict (not yet validated). Raises ValueError if not a JSON object.

    orjson, not the standard library: a third of reading a file went to json.loads. It is also
    stricter: NaN and Infinity are not JSON and are refused here. An integer beyond 64 bits comes back
    as a float; validation reports it as an integer out of range (`_beyond_64_bits`)."""
    try:
        value = orjson.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON ({_short_json_error(exc)}); send one JSON object per line") from None
    if type(value) is not dict:
        raise ValueError(f"expected a JSON object per line, got {_JSON_KINDS.get(type(value), 'a JSON value')}")
    return value


_JSON_KINDS = {list: "a JSON array", str: "a JSON string", int: "a JSON number", float: "a JSON number",
               bool: "true or false", type(None): "null"}


def _short_json_error(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return "not UTF-8"
