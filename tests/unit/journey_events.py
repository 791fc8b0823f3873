"""Small builders of validated (normalised) events for the identity / session / visit tests.

Times are minutes after T0 so the cases read like the worked examples in the docstrings.
"""

from __future__ import annotations

from typing import Any

MINUTE = 60_000
T0 = 1_795_312_800_000  # 2026-11-22T02:00:00Z

_TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "browse": {"page": "home", "sku": None, "category": None, "search_query": None, "campaign": None},
    "wifi_checkin": {"kind": "probe", "ap_id": "ap-1", "rssi": -60},
    "purchase": {"order_id": "o-1", "status": "paid", "amount_cents": 0, "currency": "CNY", "items": []},
    "share": {"platform": "wechat", "target": None},
    "complaint": {"complaint_id": "c-1", "category": "service", "severity": "high", "order_id": None},
}
_DEFAULT_CHANNEL = {"browse": "app", "wifi_checkin": "wifi", "purchase": "pos", "share": "app",
                    "complaint": "call_center"}


def at(minute: float) -> int:
    """Epoch ms of `minute` minutes after T0."""
    return T0 + round(minute * MINUTE)


def event(event_id: str, minute: float, event_type: str = "browse", **fields: Any) -> dict[str, Any]:
    """A normalised event; identifiers and type fields via keywords (member_id=..., device_id=...)."""
    out: dict[str, Any] = {
        "event_type": event_type, "event_id": event_id, "occurred_at": at(minute),
        "channel": _DEFAULT_CHANNEL[event_type], "source_id": None, "member_id": None, "device_id": None,
        "wifi_mac_hash": None, "phone_hash": None, "store_id": None, "consent_marketing": True,
        "properties": {},
    }
    out.update(_TYPE_DEFAULTS[event_type])
    unknown = set(fields) - set(out)
    assert not unknown, f"not an event field: {unknown}"
    out.update(fields)
    if not any(out[k] for k in ("member_id", "device_id", "wifi_mac_hash", "phone_hash")):
        out["device_id"] = "dev-1"
    return out


def browse(event_id: str, minute: float, **fields: Any) -> dict[str, Any]:
    return event(event_id, minute, "browse", **fields)


def checkin(event_id: str, minute: float, kind: str = "probe", rssi: int | None = -60, *,
            mac: str = "mac-1", store: str = "S1", **fields: Any) -> dict[str, Any]:
    return event(event_id, minute, "wifi_checkin", kind=kind, rssi=rssi, wifi_mac_hash=mac, store_id=store,
                 **fields)


def purchase(event_id: str, minute: float, amount_cents: int, status: str = "paid", **fields: Any) -> dict[str, Any]:
    return event(event_id, minute, "purchase", amount_cents=amount_cents, status=status, **fields)
