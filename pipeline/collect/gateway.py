"""The generic gateway format, for Wi-Fi gateways other than Meraki (`POST /v1/gateways/generic`).

    {"gateway_id": "gw-7", "store_id": "sh-xuhui-01",
     "observations": [
       {"mac": "AA-BB-CC-00-11-22", "rssi": -61, "time": "2026-11-22T10:31:05+08:00",
        "associated": true, "ap_id": "ap-3"},
       {"mac": "aabb.cc00.1123", "rssi": -80, "time": 1795314665000, "associated": false}
     ]}

- `gateway_id` (string, required): the gateway; kept in the event's properties as `gateway_id`.
- `store_id` (string, required): the store every observation of this post belongs to.
- `observations` (list, required), each: `mac` (any common spelling; hashed on reading), `time`
  (ISO-8601 with an offset, or epoch milliseconds), `rssi` (dBm, -120..0; optional), `associated`
  (true: the device is on the store Wi-Fi -> kind `associate`; false or absent -> `probe`),
  `ap_id` (optional string).

Each observation becomes one `wifi_checkin` with `source_id` = the API key's source and a
deterministic `event_id` (`gw-` + a digest of source, MAC hash, AP and time), so a re-posted
observation is dropped downstream as a duplicate. A bad observation is rejected alone, with its index.
"""

from __future__ import annotations

from typing import Any

from pipeline.collect.sightings import Sighting, Translation, checkin_event
from pipeline.events import parse_occurred_at
from pipeline.privacy import IdentifierHasher
from pipeline.validation import INVALID_VALUE, MALFORMED, SCHEMA, Rejection

_FIELDS = frozenset({"mac", "time", "rssi", "associated", "ap_id"})


class PayloadError(Exception):
    """400: the post is not in the generic gateway format; the message says what is missing."""


def translate(payload: dict[str, Any], source_id: str, hasher: IdentifierHasher) -> Translation:
    gateway_id, store_id = _required_string(payload, "gateway_id"), _required_string(payload, "store_id")
    observations = payload.get("observations")
    if type(observations) is not list:
        raise PayloadError("observations must be a list of {mac, time, rssi, associated, ap_id} objects")
    unknown = set(payload) - {"gateway_id", "store_id", "observations"}
    if unknown:
        raise PayloadError(f"unknown top-level field(s) {', '.join(sorted(unknown))}; "
                           "allowed: gateway_id, store_id, observations")
    out = Translation()
    for index, observation in enumerate(observations):
        try:
            sighting = _sighting(observation, index, store_id, hasher)
        except _Refused as refused:
            out.rejections.append((index, refused.rejection))
            continue
        out.events.append((index, checkin_event(sighting, source_id, "gw", {"gateway_id": gateway_id})))
    return out


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.rejection = Rejection(reason, detail)


def _sighting(observation: Any, index: int, store_id: str, hasher: IdentifierHasher) -> Sighting:
    path = f"observations[{index}]"
    if type(observation) is not dict:
        raise _Refused(MALFORMED, f"{path} must be an object")
    extra = set(observation) - _FIELDS
    if extra:
        raise _Refused(SCHEMA, f"{path} has unknown field(s) {', '.join(sorted(map(str, extra))[:5])}; "
                               f"allowed: {', '.join(sorted(_FIELDS))}")
    mac = observation.get("mac")
    if type(mac) is not str:
        raise _Refused(SCHEMA, f"{path}.mac is required (a string)")
    try:
        mac_hash = hasher.hash_mac(mac)
    except ValueError:
        raise _Refused(INVALID_VALUE, f"{path}.mac is not a MAC address; send 12 hex digits") from None
    return Sighting(mac_hash, store_id, _ap_id(observation.get("ap_id"), path), _time(observation.get("time"), path),
                    _rssi(observation.get("rssi"), path), _associated(observation.get("associated"), path))


def _time(value: Any, path: str) -> int:
    try:
        return parse_occurred_at(value)
    except ValueError:
        raise _Refused(SCHEMA, f"{path}.time must be ISO-8601 with an offset or epoch milliseconds") from None


def _rssi(value: Any, path: str) -> int | None:
    if value is None:
        return None
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        raise _Refused(SCHEMA, f"{path}.rssi must be a whole number of dBm")
    return value  # range (-120..0) is checked by validation


def _associated(value: Any, path: str) -> bool:
    if value is None or type(value) is bool:
        return bool(value)
    raise _Refused(SCHEMA, f"{path}.associated must be true or false")


def _ap_id(value: Any, path: str) -> str | None:
    if value is None or type(value) is str:
        return value or None
    raise _Refused(SCHEMA, f"{path}.ap_id must be a string")


def _required_string(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if type(value) is not str or not value:
        raise PayloadError(f"{name} is required (a non-empty string)")
    return value
