"""A receiver for the Cisco Meraki Scanning API (Location API), versions 2.x and 3.x.

Meraki validates a receiver with a GET that must answer the validator string, then POSTs JSON about
once a minute: `{"version": "2.0" | "3.0", "secret": "...", "type": ..., "data": {...}}`.

- **2.x**, `type: DevicesSeen`: one access point per post (`data.apMac`), `data.observations[]` with
  `clientMac`, `seenTime` (ISO-8601 UTC; `seenEpoch` in seconds as a fallback), `rssi`, `ssid`.
  One observation -> one `wifi_checkin`.
- **3.x**, `type: WiFi`: one network per post (`data.networkId`), observations per client with
  `locations[]` (a recent history, each with `time` and `rssiRecords[]` of `{apMac, rssi}`) and,
  when the client has no recent location, `latestRecord` `{time, nearestApMac, nearestApRssi}`.
  One location -> one `wifi_checkin` at its `time`, attributed to the AP that heard the client best;
  an observation without locations -> one `wifi_checkin` from `latestRecord`.
- BLE posts (`BluetoothDevicesSeen`, `BLE`) carry no Wi-Fi sightings: answered, counted, ignored.

**RSSI.** Scanning API v3 reports `rssi` / `nearestApRssi` in dBm (negative, e.g. -47; sometimes as a
string). v2 reports a positive number (Meraki's own 2.0 example shows `"rssi": 47`): signal strength
in dB above the noise floor, the Atheros-style RSSI, which receivers convert with a nominal noise
floor of -95 dBm: dBm = rssi - 95 (47 -> -48 dBm). A v3 value above 0 is treated the same way. The
result is rounded and kept within -120..0.

`kind` is `associate` when the client is on an SSID of the network (`ssid` not null), else `probe`.
The client MAC is hashed on reading; AP MACs (infrastructure, not personal) become `ap_id` in the
form `aa:bb:cc:dd:ee:ff`. The store comes from the store map (`pipeline.collect.stores`); a sighting
whose AP and network are both unmapped is skipped and counted by AP and network, never silently.
"""

from __future__ import annotations

import hmac
import math
from typing import Any, Callable

from pipeline.collect.sightings import Sighting, Translation, checkin_event, clamp_rssi
from pipeline.collect.stores import StoreMap, normalise_ap_mac
from pipeline.events import parse_occurred_at
from pipeline.privacy import IdentifierHasher
from pipeline.validation import INVALID_VALUE, MALFORMED, SCHEMA, Rejection

SOURCE_ID = "meraki"
V2_NOISE_FLOOR_DBM = -95
_SECONDS_BELOW = 100_000_000_000  # a numeric time below this is epoch seconds, else milliseconds


class PayloadError(Exception):
    """400: the post is not a Scanning API payload this receiver understands."""


class SecretError(Exception):
    """403: the shared secret is wrong or missing (or none is configured here)."""


def check_secret(payload: dict[str, Any], expected: str | None) -> None:
    if not expected:
        raise SecretError("this collector has no Meraki secret configured; set O2O_MERAKI_SECRET "
                          "(meraki_secret) to the secret shown in the Meraki dashboard")
    given = payload.get("secret")
    if type(given) is not str or not hmac.compare_digest(given.encode(), expected.encode()):
        raise SecretError("wrong or missing secret; it must equal the shared secret configured in the "
                          "Meraki dashboard and in meraki_secret")


def v2_rssi_to_dbm(value: Any) -> int | None:
    """Scanning API 2.x `rssi` (dB above a -95 dBm noise floor) -> dBm."""
    number = _number(value)
    if number is None:
        return None
    return clamp_rssi(number + V2_NOISE_FLOOR_DBM if number >= 0 else number)


def v3_rssi_to_dbm(value: Any) -> int | None:
    """Scanning API 3.x `rssi` (dBm, possibly a string) -> dBm; a positive value is converted as in v2."""
    number = _number(value)
    if number is None:
        return None
    return clamp_rssi(number + V2_NOISE_FLOOR_DBM if number > 0 else number)


def translate(payload: dict[str, Any], stores: StoreMap, hasher: IdentifierHasher) -> Translation:
    """The `wifi_checkin` events of one post (secret already checked). PayloadError if unreadable."""
    version = str(payload.get("version", "")).split(".")[0]
    kind = payload.get("type")
    data = payload.get("data")
    handler = _HANDLERS.get((version, kind))
    if handler is None:
        if (version, kind) in _BLE_TYPES:
            return Translation()
        raise PayloadError(f"unsupported Scanning API post (version {payload.get('version')!r}, type {kind!r}); "
                           "this receiver reads version 2.x DevicesSeen and 3.x WiFi posts")
    if type(data) is not dict or type(data.get("observations")) is not list:
        raise PayloadError("data.observations must be a list; is this a Meraki Scanning API post?")
    return handler(data, stores, hasher)


# --- 2.x --------------------------------------------------------------------------------------

def _v2(data: dict[str, Any], stores: StoreMap, hasher: IdentifierHasher) -> Translation:
    out = Translation()
    ap = normalise_ap_mac(data.get("apMac"))
    for index, observation in enumerate(data["observations"]):
        try:
            mac_hash = _client_hash(observation, index, hasher)
            when = _v2_time(observation, index)
        except _Refused as refused:
            out.rejections.append((index, refused.rejection))
            continue
        sighting = (when, ap, v2_rssi_to_dbm(observation.get("rssi")))
        _add(out, index, mac_hash, sighting, None, bool(observation.get("ssid")), stores)
    return out


def _v2_time(observation: dict[str, Any], index: int) -> int:
    if observation.get("seenTime") is not None:
        return _time(observation["seenTime"], f"observations[{index}].seenTime")
    return _time(observation.get("seenEpoch"), f"observations[{index}].seenEpoch", seconds=True)


# --- 3.x --------------------------------------------------------------------------------------

def _v3(data: dict[str, Any], stores: StoreMap, hasher: IdentifierHasher) -> Translation:
    out = Translation()
    network = data.get("networkId") if type(data.get("networkId")) is str else None
    for index, observation in enumerate(data["observations"]):
        try:
            mac_hash = _client_hash(observation, index, hasher)
            sightings = _v3_sightings(observation, index)
        except _Refused as refused:
            out.rejections.append((index, refused.rejection))
            continue
        for sighting in sightings:
            _add(out, index, mac_hash, sighting, network, bool(observation.get("ssid")), stores)
    return out


def _v3_sightings(observation: dict[str, Any], index: int) -> list[tuple[int, str | None, int | None]]:
    """(time ms, AP, dBm) per location, or from latestRecord when there are no locations."""
    locations = observation.get("locations") or []
    if type(locations) is not list:
        raise _Refused(SCHEMA, f"observations[{index}].locations must be a list")
    sightings = [_v3_location(location, f"observations[{index}].locations[{n}]")
                 for n, location in enumerate(locations)]
    if sightings:
        return sightings
    latest = observation.get("latestRecord")
    if type(latest) is not dict:
        raise _Refused(SCHEMA, f"observations[{index}] has neither locations nor latestRecord")
    when = _time(latest.get("time"), f"observations[{index}].latestRecord.time")
    return [(when, normalise_ap_mac(latest.get("nearestApMac")), v3_rssi_to_dbm(latest.get("nearestApRssi")))]


def _v3_location(location: Any, path: str) -> tuple[int, str | None, int | None]:
    if type(location) is not dict:
        raise _Refused(SCHEMA, f"{path} must be an object")
    when = _time(location.get("time"), f"{path}.time")
    best: tuple[int, str | None] | None = None
    for record in location.get("rssiRecords") or []:
        if type(record) is dict:
            dbm = v3_rssi_to_dbm(record.get("rssi"))
            if dbm is not None and (best is None or dbm > best[0]):
                best = (dbm, normalise_ap_mac(record.get("apMac")))
    if best is None:
        return when, normalise_ap_mac(location.get("nearestApMac")), None
    return when, best[1], best[0]


# --- shared -----------------------------------------------------------------------------------

class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.rejection = Rejection(reason, detail)


def _add(out: Translation, index: int, mac_hash: str, sighting: tuple[int, str | None, int | None],
         network: str | None, associated: bool, stores: StoreMap) -> None:
    when, ap, dbm = sighting
    store = stores.store_for(ap, network)
    if store is None:
        out.unknown_store += 1
        if ap is not None:
            out.unknown_aps[ap] += 1
        if network is not None:
            out.unknown_networks[network] += 1
        return
    properties = {"meraki_network_id": network} if network else {}
    event = checkin_event(Sighting(mac_hash, store, ap, when, dbm, associated), SOURCE_ID, "mk", properties)
    out.events.append((index, event))


def _client_hash(observation: Any, index: int, hasher: IdentifierHasher) -> str:
    if type(observation) is not dict:
        raise _Refused(MALFORMED, f"observations[{index}] must be an object")
    mac = observation.get("clientMac")
    if type(mac) is not str:
        raise _Refused(SCHEMA, f"observations[{index}].clientMac is required")
    try:
        return hasher.hash_mac(mac)
    except ValueError:
        raise _Refused(INVALID_VALUE, f"observations[{index}].clientMac is not a MAC address") from None


def _time(value: Any, path: str, seconds: bool = False) -> int:
    if type(value) in (int, float) and math.isfinite(value) and value > 0:
        return int(value * 1000) if seconds or value < _SECONDS_BELOW else int(value)
    if type(value) is str:
        try:
            return parse_occurred_at(value)
        except ValueError:
            pass
    raise _Refused(SCHEMA, f"{path} is missing or not a time; Meraki sends ISO-8601 such as 2016-09-24T00:06:23Z")


def _number(value: Any) -> float | None:
    if type(value) is str:
        try:
            value = float(value)
        except ValueError:
            return None
    if type(value) in (int, float) and math.isfinite(value):
        return value
    return None


_HANDLERS: dict[tuple[str, Any], Callable[[dict[str, Any], StoreMap, IdentifierHasher], Translation]] = {
    ("2", "DevicesSeen"): _v2,
    ("3", "WiFi"): _v3,
}
_BLE_TYPES = {("2", "BluetoothDevicesSeen"), ("3", "BLE")}
