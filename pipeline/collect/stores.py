"""Which store a Wi-Fi sighting belongs to: a map of network id or AP MAC -> store id.

The map file (`meraki_store_map`, `O2O_MERAKI_STORE_MAP`) is JSON:

    {"networks": {"L_646829496481105433": "sh-xuhui-01"},
     "aps": {"00:18:0a:13:dd:b0": "sh-xuhui-01", "0018.0a13.ddb1": "bj-chaoyang-02"}}

AP MACs may be written in any common spelling (colons, dashes, dots, no separators, any case); they
are compared in the canonical form `aa:bb:cc:dd:ee:ff`. An AP's entry wins over its network's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.privacy import normalise_mac


class StoreMapError(ValueError):
    """The store map has the wrong shape; the message names the entry and the expected form."""


def normalise_ap_mac(value: Any) -> str | None:
    """'00-18-0A-13-DD-B0', '0018.0a13.ddb0', '00180a13ddb0' -> '00:18:0a:13:dd:b0'; None if not a MAC."""
    if type(value) is not str:
        return None
    compact = normalise_mac(value)
    if compact is None:
        return None
    return ":".join(compact[i:i + 2] for i in range(0, 12, 2))


@dataclass(frozen=True)
class StoreMap:
    networks: dict[str, str] = field(default_factory=dict)
    aps: dict[str, str] = field(default_factory=dict)  # canonical AP MAC -> store id

    @classmethod
    def from_dict(cls, data: Any) -> "StoreMap":
        if not isinstance(data, dict) or not set(data) <= {"networks", "aps"}:
            raise StoreMapError('expected {"networks": {"<network id>": "<store id>"}, '
                                '"aps": {"<ap mac>": "<store id>"}}')
        networks = _string_map(data.get("networks", {}), "networks")
        aps: dict[str, str] = {}
        for mac, store in _string_map(data.get("aps", {}), "aps").items():
            canonical = normalise_ap_mac(mac)
            if canonical is None:
                raise StoreMapError(f"aps: {mac!r} is not a MAC address; write it like 00:18:0a:13:dd:b0")
            aps[canonical] = store
        return cls(networks, aps)

    def store_for(self, ap_mac: str | None, network_id: str | None) -> str | None:
        """The store of an AP (canonical MAC) or, failing that, of its network; None when unknown."""
        if ap_mac is not None and ap_mac in self.aps:
            return self.aps[ap_mac]
        if network_id is not None:
            return self.networks.get(network_id)
        return None


def _string_map(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise StoreMapError(f"{name} must be an object of \"<id>\": \"<store id>\" entries")
    for key, store in value.items():
        if not isinstance(store, str) or not store:
            raise StoreMapError(f"{name}[{key!r}] must be a store id (a non-empty string)")
    return dict(value)
