"""Validate and normalise one incoming event: canonical JSON parsed to a dict, or an Avro-decoded dict.

`validate(raw, now_ms, policy)` returns a normalised event (see `pipeline.events`) or a `Rejection`
carrying one reason code. Rejections are returned, not raised: bad input is routine at ingress.

Reason codes:

| code               | meaning                                                                  |
| ------------------ | ------------------------------------------------------------------------ |
| `malformed`        | not a JSON object / not decodable (also used by `serde.DecodeError`)     |
| `schema`           | unknown event_type or field, missing required field, wrong type, value   |
|                    | outside an enum, naive ISO timestamp                                     |
| `invalid_value`    | well-typed but out of range: negative amount or price, quantity < 1,     |
|                    | rssi outside -120..0, empty or too long strings, bad MAC / phone / hash, |
|                    | wifi_checkin without store_id, occurred_at before `min_occurred_at_ms`   |
| `no_identity`      | none of member_id, device_id, wifi_mac(_hash), phone(_hash)              |
| `future_timestamp` | occurred_at more than `max_future_skew_ms` ahead of `now_ms`             |

Checks run in this order, and the first failure is the answer: the input is an object; event_type;
no unknown fields; each field in schema order (`schema` or `invalid_value`); raw wifi_mac / phone;
store_id for wifi_checkin; identity; the future bound.

Decisions: unknown top-level fields are rejected (`schema`), since a misspelt `memberId` would
otherwise silently drop the identity; `channel` is an enum with 'other' (the Avro enum default), so
an unlisted channel is a `schema` rejection telling the producer to send 'other'. Empty strings in
optional fields count as absent. Details name the field and what to send; they never echo a value
that looks like a MAC address or phone number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from pipeline.events import (
    EVENT_ID_MAX_LEN,
    EVENT_TYPES,
    IDENTITY_FIELDS,
    RAW_IDENTIFIER_FIELDS,
    SPECS,
    FieldSpec,
    parse_json_line,
    parse_occurred_at,
)
from pipeline.privacy import looks_hashed, normalise_mac, normalise_phone

MALFORMED = "malformed"
SCHEMA = "schema"
NO_IDENTITY = "no_identity"
FUTURE_TIMESTAMP = "future_timestamp"
INVALID_VALUE = "invalid_value"
REASON_CODES: tuple[str, ...] = (MALFORMED, SCHEMA, NO_IDENTITY, FUTURE_TIMESTAMP, INVALID_VALUE)

# Inclusive numeric ranges beyond the Avro type's own (None: unbounded on that side).
VALUE_RANGES: dict[str, tuple[int | None, int | None]] = {
    "rssi": (-120, 0),
    "amount_cents": (0, None),
    "quantity": (1, None),
    "price_cents": (0, None),
}
_AVRO_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_SECONDS_NOT_MS_BELOW = 100_000_000_000  # 1973 in ms, year 5138 in s: smaller values are seconds


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input was refused: a reason code, a sentence for the producer, the event_id if readable."""

    reason: str
    detail: str
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """Tunable limits; settings map onto these. Bad values fail here, naming the value."""

    max_future_skew_ms: int = 300_000
    min_occurred_at_ms: int = 946_684_800_000  # 2000-01-01T00:00:00Z
    max_string_len: int = 1024
    max_properties: int = 64
    max_items: int = 1000

    def __post_init__(self) -> None:
        for name in ("max_future_skew_ms", "min_occurred_at_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"ValidationPolicy.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_string_len", "max_properties", "max_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"ValidationPolicy.{name} must be >= 1, got {getattr(self, name)}")


DEFAULT_POLICY = ValidationPolicy()


class _Invalid(Exception):
    """Internal: raised by a field check, turned into a Rejection by `validate`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def validate(raw: Any, now_ms: int, policy: ValidationPolicy = DEFAULT_POLICY) -> dict[str, Any] | Rejection:
    """A normalised event (a new dict; `raw` is not modified) or a Rejection."""
    if type(raw) is not dict:
        return Rejection(MALFORMED, f"expected an event object, got {type(raw).__name__}")
    event_type = raw.get("event_type")
    check = _CHECKS.get(event_type) if type(event_type) is str else None
    try:
        if check is None:
            raise _unknown_event_type(event_type)
        return check(raw, now_ms, policy)
    except _Invalid as invalid:
        return Rejection(invalid.reason, invalid.detail, _readable_event_id(raw))


def validate_json_line(
    line: str | bytes, now_ms: int, policy: ValidationPolicy = DEFAULT_POLICY
) -> dict[str, Any] | Rejection:
    """`validate` for one line of canonical JSON; unparseable lines are `malformed`."""
    try:
        raw = parse_json_line(line)
    except ValueError as exc:
        return Rejection(MALFORMED, str(exc))
    return validate(raw, now_ms, policy)


def _readable_event_id(raw: dict[str, Any]) -> str | None:
    value = raw.get("event_id")
    if type(value) is str and 0 < len(value) <= EVENT_ID_MAX_LEN:
        return value
    return None


def _unknown_event_type(value: Any) -> _Invalid:
    if value is None:
        return _Invalid(SCHEMA, f"event_type is required; send one of {_listing(EVENT_TYPES)}")
    return _Invalid(SCHEMA, f"event_type {_shown(value)} is not known; send one of {_listing(EVENT_TYPES)}")


# --- per-type check, compiled once from the schema -------------------------------------------

Check = Callable[[Any, ValidationPolicy], Any]


def _compile_type_check(event_type: str) -> Callable[[dict[str, Any], int, ValidationPolicy], dict[str, Any]]:
    specs = SPECS[event_type]
    allowed = frozenset(spec.name for spec in specs) | {"event_type"}
    field_checks = tuple(
        (spec.name, _field_check(spec, spec.name)) for spec in specs if spec.name not in RAW_IDENTIFIER_FIELDS
    )
    raw_checks = tuple((name, _RAW_IDENTIFIER_CHECKS[name]) for name in RAW_IDENTIFIER_FIELDS)
    identity_fields = IDENTITY_FIELDS
    needs_store = event_type == "wifi_checkin"

    def check(raw: dict[str, Any], now_ms: int, policy: ValidationPolicy) -> dict[str, Any]:
        if not allowed.issuperset(raw):
            raise _unknown_fields(event_type, raw.keys() - allowed)
        event: dict[str, Any] = {"event_type": event_type}
        for name, field_check in field_checks:
            event[name] = field_check(raw.get(name), policy)
        for name, raw_check in raw_checks:
            value = raw.get(name)
            if value is not None and value != "":
                event[name] = raw_check(value)
        if needs_store and event["store_id"] is None:
            raise _Invalid(INVALID_VALUE, "wifi_checkin needs store_id: send the store the gateway belongs to")
        for name in identity_fields:
            if event[name] is not None:
                break
        else:
            if "wifi_mac" not in event and "phone" not in event:
                raise _Invalid(NO_IDENTITY, _NO_IDENTITY_DETAIL)
        if event["occurred_at"] > now_ms + policy.max_future_skew_ms:
            raise _future(event["occurred_at"] - now_ms, policy)
        return event

    return check


_NO_IDENTITY_DETAIL = (
    "the event identifies nobody: send at least one of member_id, device_id, wifi_mac (or wifi_mac_hash), "
    "phone (or phone_hash)"
)


def _unknown_fields(event_type: str, names: set[str]) -> _Invalid:
    shown = ", ".join(_shown(name) for name in sorted(names, key=str)[:5])
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return _Invalid(
        SCHEMA,
        f"unknown field(s) {shown}{more} for event_type '{event_type}'; remove them or check the spelling "
        f"against schemas/{event_type}.avsc (extra attributes go in 'properties')",
    )


def _future(ahead_ms: int, policy: ValidationPolicy) -> _Invalid:
    return _Invalid(
        FUTURE_TIMESTAMP,
        f"occurred_at is {ahead_ms // 1000} s ahead of the ingest clock (allowed skew "
        f"{policy.max_future_skew_ms // 1000} s); check the producer's clock and UTC offset",
    )


def _field_check(spec: FieldSpec, path: str) -> Check:
    special = _SPECIAL_CHECKS.get(spec.name)
    if special is not None:
        return special(spec, path)
    return _KIND_CHECKS[spec.kind](spec, path)


def _string_check(spec: FieldSpec, path: str, max_len: int | None = None) -> Check:
    required = spec.required and not spec.nullable

    def check(value: Any, policy: ValidationPolicy) -> str | None:
        if value is None or value == "":
            if required:
                raise _missing_or_empty(path, value)
            return None
        if type(value) is not str:
            raise _wrong_type(path, "a string", value)
        limit = max_len or policy.max_string_len
        if len(value) > limit:
            raise _Invalid(INVALID_VALUE, f"{path} is {len(value)} characters long; the limit is {limit}")
        return value

    return check


def _integer_check(spec: FieldSpec, path: str) -> Check:
    low, high = _AVRO_INT_RANGES[spec.kind]
    domain_low, domain_high = VALUE_RANGES.get(spec.name, (None, None))
    if domain_low is None and domain_high is None:
        range_text = f"fit a {spec.kind == 'int' and 32 or 64}-bit signed integer"
    elif domain_high is None:
        range_text = f"be >= {domain_low}"
    else:
        range_text = f"be between {domain_low} and {domain_high}"
    low = low if domain_low is None else domain_low
    high = high if domain_high is None else domain_high
    required = spec.required and not spec.nullable

    def check(value: Any, policy: ValidationPolicy) -> int | None:
        if value is None:
            if required:
                raise _missing_or_empty(path, value)
            return None
        if type(value) is not int:
            if _beyond_64_bits(value):
                raise _Invalid(INVALID_VALUE, f"{path} must {range_text}, got an integer beyond 64 bits")
            raise _wrong_type(path, "an integer", value)
        if value < low or value > high:
            raise _Invalid(INVALID_VALUE, f"{path} must {range_text}, got {_shown(value)}")
        return value

    return check


def _boolean_check(spec: FieldSpec, path: str) -> Check:
    def check(value: Any, policy: ValidationPolicy) -> bool | None:
        if value is None or type(value) is bool:
            return value
        raise _wrong_type(path, "true, false or null", value)

    return check


def _enum_check(spec: FieldSpec, path: str) -> Check:
    symbols = frozenset(spec.symbols)
    listing = _listing(spec.symbols)
    hint = " (use 'other' for anything not listed)" if "other" in symbols else ""

    def check(value: Any, policy: ValidationPolicy) -> str:
        if type(value) is str and value in symbols:
            return value
        if value is None or value == "":
            raise _Invalid(SCHEMA, f"{path} is required; send one of {listing}")
        raise _Invalid(SCHEMA, f"{path} {_shown(value)} is not one of {listing}{hint}")

    return check


def _map_check(spec: FieldSpec, path: str) -> Check:
    def check(value: Any, policy: ValidationPolicy) -> dict[str, str]:
        if value is None:
            return {}
        if type(value) is not dict:
            raise _wrong_type(path, "an object of string values", value)
        if len(value) > policy.max_properties:
            raise _Invalid(INVALID_VALUE, f"{path} has {len(value)} entries; the limit is {policy.max_properties}")
        limit = policy.max_string_len
        for key, item in value.items():
            if type(key) is not str:
                raise _Invalid(SCHEMA, f"{path} keys must be strings, got {_type_name(key)}")
            if type(item) is not str:
                raise _Invalid(
                    SCHEMA, f"{path}[{_shown(key)}] must be a string, got {_type_name(item)}; send it as text"
                )
            if len(key) > limit or len(item) > limit:
                raise _Invalid(INVALID_VALUE, f"{path}[{_shown(key[:40])}] is longer than {limit} characters")
        return dict(value)  # the event owns its properties: hashing or enrichment never touches the input

    return check


def _array_check(spec: FieldSpec, path: str) -> Check:
    item_allowed = frozenset(item.name for item in spec.items)
    # Item checks are compiled once with the path 'items[]'; a rejection gets the index filled in.
    item_checks = tuple((item.name, _KIND_CHECKS[item.kind](item, f"{path}[].{item.name}")) for item in spec.items)

    def check_item(item: Any, index: int, policy: ValidationPolicy) -> dict[str, Any]:
        if type(item) is not dict:
            raise _wrong_type(f"{path}[{index}]", "an object", item)
        if not item_allowed.issuperset(item):
            unknown = ", ".join(_shown(k) for k in sorted(item.keys() - item_allowed, key=str)[:5])
            raise _Invalid(
                SCHEMA, f"{path}[{index}] has unknown field(s) {unknown}; allowed: {_listing(sorted(item_allowed))}"
            )
        return {name: item_check(item.get(name), policy) for name, item_check in item_checks}

    def check(value: Any, policy: ValidationPolicy) -> list[dict[str, Any]]:
        if value is None:
            return []
        if type(value) is not list:
            raise _wrong_type(path, "a list", value)
        if len(value) > policy.max_items:
            raise _Invalid(INVALID_VALUE, f"{path} has {len(value)} entries; the limit is {policy.max_items}")
        index = 0
        try:
            checked = []
            for index, item in enumerate(value):
                checked.append(check_item(item, index, policy))
            return checked
        except _Invalid as invalid:
            raise _Invalid(invalid.reason, invalid.detail.replace(f"{path}[]", f"{path}[{index}]", 1)) from None

    return check


def _timestamp_check(spec: FieldSpec, path: str) -> Check:
    def check(value: Any, policy: ValidationPolicy) -> int:
        if value is None:
            raise _Invalid(SCHEMA, f"{path} is required; send ISO-8601 with an offset or epoch milliseconds")
        if _beyond_64_bits(value):
            raise _Invalid(INVALID_VALUE, f"{path} is beyond the range of epoch milliseconds")
        try:
            epoch_ms = parse_occurred_at(value)
        except ValueError as exc:
            raise _Invalid(SCHEMA, str(exc)) from None
        if epoch_ms < policy.min_occurred_at_ms:
            hint = (
                "it looks like epoch seconds; send epoch milliseconds"
                if 0 < epoch_ms < _SECONDS_NOT_MS_BELOW
                else "check the producer's clock"
            )
            raise _Invalid(
                INVALID_VALUE, f"{path} is before the earliest accepted time ({policy.min_occurred_at_ms} ms); {hint}"
            )
        if epoch_ms >= 2**63:
            raise _Invalid(INVALID_VALUE, f"{path} is beyond the range of epoch milliseconds")
        return epoch_ms

    return check


def _event_id_check(spec: FieldSpec, path: str) -> Check:
    return _string_check(spec, path, max_len=EVENT_ID_MAX_LEN)


def _hash_check(spec: FieldSpec, path: str) -> Check:
    raw_name = next(raw for raw, hashed in RAW_IDENTIFIER_FIELDS.items() if hashed == spec.name)

    def check(value: Any, policy: ValidationPolicy) -> str | None:
        if value is None or value == "":
            return None
        if type(value) is not str:
            raise _wrong_type(path, "a string", value)
        if not looks_hashed(value):
            raise _Invalid(
                INVALID_VALUE,
                f"{path} is not a 64-hex-digit HMAC-SHA256; send the raw value in '{raw_name}' and the "
                "ingest agent hashes it",
            )
        return value

    return check


def _currency_check(spec: FieldSpec, path: str) -> Check:
    def check(value: Any, policy: ValidationPolicy) -> str | None:
        if value is None or value == "":
            return None
        if type(value) is not str:
            raise _wrong_type(path, "a string", value)
        code = value.upper()
        if len(code) != 3 or not code.isascii() or not code.isalpha():
            raise _Invalid(INVALID_VALUE, f"{path} {_shown(value)} is not an ISO 4217 code; send e.g. 'CNY'")
        return code

    return check


def _raw_mac(value: Any) -> str:
    if type(value) is not str:
        raise _wrong_type("wifi_mac", "a string", value)
    normalised = normalise_mac(value)
    if normalised is None:
        raise _Invalid(INVALID_VALUE, "wifi_mac is not a MAC address; send 12 hex digits such as aa:bb:cc:00:11:22")
    return normalised


def _raw_phone(value: Any) -> str:
    if type(value) is not str:
        raise _wrong_type("phone", "a string", value)
    normalised = normalise_phone(value)
    if normalised is None:
        raise _Invalid(
            INVALID_VALUE,
            "phone is not a phone number; send 5..20 digits with an optional leading '+' "
            "(spaces, dashes and parentheses are ignored)",
        )
    return normalised


_KIND_CHECKS: dict[str, Callable[[FieldSpec, str], Check]] = {
    "string": _string_check,
    "int": _integer_check,
    "long": _integer_check,
    "boolean": _boolean_check,
    "enum": _enum_check,
    "map": _map_check,
    "array": _array_check,
    "timestamp_ms": _timestamp_check,
}
_SPECIAL_CHECKS: dict[str, Callable[[FieldSpec, str], Check]] = {
    "event_id": _event_id_check,
    "wifi_mac_hash": _hash_check,
    "phone_hash": _hash_check,
    "currency": _currency_check,
}
_RAW_IDENTIFIER_CHECKS: dict[str, Callable[[Any], str]] = {"wifi_mac": _raw_mac, "phone": _raw_phone}


# --- details -----------------------------------------------------------------------------------

_LOOKS_LIKE_MAC = re.compile(
    r"(?:[0-9A-Fa-f]{2}[:\-. ]?){5}[0-9A-Fa-f]{2}"  # aa:bb:cc:00:11:22, AA-BB-..., aabbcc001122
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}"  # aabb.cc00.1122
)
_LOOKS_LIKE_PHONE = re.compile(r"\d[\d\s\-().]{5,}\d")


def _shown(value: Any) -> str:
    """A value quoted for a detail, shortened; withheld when it could be a MAC or a phone number."""
    text = value if isinstance(value, str) else repr(value)
    if _LOOKS_LIKE_MAC.search(text) or _LOOKS_LIKE_PHONE.search(text):
        return "<value withheld: looks like a MAC or phone number>"
    quoted = repr(text) if isinstance(value, str) else text
    return quoted if len(quoted) <= 40 else quoted[:37] + "..."


def _listing(values: Any) -> str:
    return ", ".join(f"'{v}'" for v in values)


_TYPE_NAMES = {
    bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object",
}


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _beyond_64_bits(value: Any) -> bool:
    """A JSON integer too large for 64 bits: the JSON reader (orjson) gives it as a float."""
    return type(value) is float and value.is_integer() and abs(value) >= 2**63


def _wrong_type(path: str, expected: str, value: Any) -> _Invalid:
    return _Invalid(SCHEMA, f"{path} must be {expected}, got {_type_name(value)}")


def _missing_or_empty(path: str, value: Any) -> _Invalid:
    if value is None:
        return _Invalid(SCHEMA, f"{path} is required")
    return _Invalid(INVALID_VALUE, f"{path} must not be empty")


_CHECKS = {event_type: _compile_type_check(event_type) for event_type in EVENT_TYPES}
