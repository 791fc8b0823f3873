"""Hypothesis strategies for raw (producer-side) events of every type, valid by construction."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from pipeline.events import ENUMS, EVENT_TYPES

NOW_MS = 1_795_312_800_000  # 2026-11-22T02:00:00Z

text = st.text(min_size=1, max_size=30)
maybe_text = st.none() | text
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=64)
hashes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
macs = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
phones = st.from_regex(r"\+?[1-9][0-9]{6,14}", fullmatch=True)


def enum(event_type: str, field: str) -> st.SearchStrategy[str]:
    return st.sampled_from(ENUMS[(event_type, field)])


def _identity() -> st.SearchStrategy[dict[str, Any]]:
    fields = st.fixed_dictionaries(
        {},
        optional={
            "member_id": ids,
            "device_id": ids,
            "wifi_mac_hash": hashes,
            "phone_hash": hashes,
            "wifi_mac": macs,
            "phone": phones,
        },
    )
    return fields.filter(bool)


def _items() -> st.SearchStrategy[list[dict[str, Any]]]:
    item = st.fixed_dictionaries(
        {"sku": ids, "quantity": st.integers(1, 1000), "price_cents": st.integers(0, 10**9)}
    )
    return st.lists(item, max_size=5)


def _type_fields(event_type: str) -> st.SearchStrategy[dict[str, Any]]:
    if event_type == "browse":
        return st.fixed_dictionaries(
            {}, optional={k: maybe_text for k in ("page", "sku", "category", "search_query", "campaign")}
        )
    if event_type == "wifi_checkin":
        return st.fixed_dictionaries(
            {"kind": enum(event_type, "kind"), "store_id": ids},
            optional={"ap_id": maybe_text, "rssi": st.none() | st.integers(-120, 0)},
        )
    if event_type == "purchase":
        return st.fixed_dictionaries(
            {
                "order_id": ids,
                "status": enum(event_type, "status"),
                "amount_cents": st.integers(0, 2**62),
            },
            optional={"currency": st.sampled_from(["CNY", "USD", "eur"]), "items": _items()},
        )
    if event_type == "share":
        return st.fixed_dictionaries({"platform": enum(event_type, "platform")}, optional={"target": maybe_text})
    assert event_type == "complaint"
    return st.fixed_dictionaries(
        {"category": enum(event_type, "category"), "severity": enum(event_type, "severity")},
        optional={"complaint_id": maybe_text, "order_id": maybe_text},
    )


@st.composite
def raw_events(draw: Any, event_type: str | None = None, raw_identifiers: bool = True) -> dict[str, Any]:
    """A producer's event that passes validation at NOW_MS with the default policy."""
    event_type = event_type or draw(st.sampled_from(EVENT_TYPES))
    event: dict[str, Any] = {
        "event_type": event_type,
        "event_id": draw(ids),
        "occurred_at": draw(st.integers(NOW_MS - 30 * 86_400_000, NOW_MS + 300_000)),
        "channel": draw(enum(event_type, "channel")),
    }
    event.update(draw(_identity()))
    if not raw_identifiers:
        event.pop("wifi_mac", None)
        event.pop("phone", None)
        if not any(event.get(k) for k in ("member_id", "device_id", "wifi_mac_hash", "phone_hash")):
            event["member_id"] = draw(ids)
    event.update(
        draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "source_id": maybe_text,
                    "store_id": ids,
                    "consent_marketing": st.none() | st.booleans(),
                    "properties": st.dictionaries(text, st.text(max_size=20), max_size=4),
                },
            )
        )
    )
    event.update(draw(_type_fields(event_type)))
    return event
