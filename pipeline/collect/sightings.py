"""One Wi-Fi sighting (a device seen by an AP at a time) -> one canonical `wifi_checkin` event.

Shared by the Meraki receiver and the generic gateway format. The client MAC arrives already
hashed; the event id is derived from what was seen (source, MAC hash, AP, time), so a gateway that
posts the same sighting again produces the same event id and the ingest agent drops the copy.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pipeline.validation import Rejection

RSSI_MIN_DBM, RSSI_MAX_DBM = -120, 0


@dataclass(frozen=True, slots=True)
class Sighting:
    mac_hash: str
    store_id: str
    ap_id: str | None
    occurred_at_ms: int
    rssi_dbm: int | None
    associated: bool


@dataclass
class Translation:
    """What a gateway post turned into: events (with the index of the observation each came from),
    observations refused (index, Rejection), and observations whose store is unknown."""

    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    rejections: list[tuple[int, Rejection]] = field(default_factory=list)
    unknown_networks: Counter = field(default_factory=Counter)
    unknown_aps: Counter = field(default_factory=Counter)
    unknown_store: int = 0  # observations skipped because no store is mapped for them

    def unknown_report(self) -> dict[str, Any]:
        return {"observations": self.unknown_store, "networks": dict(self.unknown_networks),
                "aps": dict(self.unknown_aps)}


def checkin_event(sighting: Sighting, source_id: str, id_prefix: str,
                  properties: dict[str, str] | None = None) -> dict[str, Any]:
    """Canonical JSON (as a dict) of a `wifi_checkin`; validation still runs on it downstream."""
    return {
        "event_id": f"{id_prefix}-{sighting_id(source_id, sighting)}",
        "event_type": "wifi_checkin",
        "occurred_at": sighting.occurred_at_ms,
        "channel": "wifi",
        "source_id": source_id,
        "wifi_mac_hash": sighting.mac_hash,
        "store_id": sighting.store_id,
        "kind": "associate" if sighting.associated else "probe",
        "ap_id": sighting.ap_id,
        "rssi": sighting.rssi_dbm,
        "properties": properties or {},
    }


def sighting_id(source_id: str, sighting: Sighting) -> str:
    seen = f"{source_id}|{sighting.mac_hash}|{sighting.ap_id}|{sighting.occurred_at_ms}"
    return hashlib.blake2b(seen.encode(), digest_size=12).hexdigest()


def clamp_rssi(dbm: float) -> int:
    """Round to whole dBm and keep within the schema's -120..0."""
    return max(RSSI_MIN_DBM, min(RSSI_MAX_DBM, round(dbm)))
