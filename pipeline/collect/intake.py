"""Per event, the API key's rules, applied before validation (which the producer SDK does).

- the event type must be one the key may send (`invalid_value` otherwise: the type exists, this key
  may not send it);
- `source_id` is the key's source: filled in when absent, refused (`invalid_value`) when it names
  another source, so one key cannot pose as another source.

Rejections use the dead-letter reason codes of `pipeline.validation`.
"""

from __future__ import annotations

from typing import Any

from pipeline.collect.keys import ApiKey
from pipeline.events import EVENT_TYPES
from pipeline.validation import INVALID_VALUE, MALFORMED, Rejection

UNKNOWN_TYPE = "unknown"  # the type label of rejected items whose event_type is not a known type


def admit(item: Any, key: ApiKey) -> dict[str, Any] | Rejection:
    """The event stamped with the key's source, or why this key may not send it."""
    if type(item) is Rejection:
        return item
    if type(item) is not dict:
        return Rejection(MALFORMED, "expected an event object")
    event_type = item.get("event_type")
    if type(event_type) is str and event_type in EVENT_TYPES and not key.allows(event_type):
        return Rejection(INVALID_VALUE, f"event_type '{event_type}' is not allowed for this API key (source "
                                        f"'{key.source}' may send {', '.join(sorted(key.types))}); "
                                        "ask the operator for a key that allows it", _event_id(item))
    source_id = item.get("source_id")
    if source_id is None or source_id == "":
        item["source_id"] = key.source
    elif source_id != key.source:
        return Rejection(INVALID_VALUE, f"source_id does not match this API key's source '{key.source}'; "
                                        "leave source_id out and the collector fills it in", _event_id(item))
    return item


def type_label(item: Any) -> str:
    """The event type to count a rejected item under."""
    event_type = item.get("event_type") if type(item) is dict else None
    return event_type if type(event_type) is str and event_type in EVENT_TYPES else UNKNOWN_TYPE


def _event_id(item: dict[str, Any]) -> str | None:
    value = item.get("event_id")
    return value if type(value) is str and 0 < len(value) <= 64 else None
