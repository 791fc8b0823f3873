"""Gateway payloads for the collector's tests, built from Cisco Meraki's published examples.

- v2: the `DevicesSeen` example of the Scanning API 2.0 documentation
  (https://developer.cisco.com/meraki/scanning-api/2-0), unchanged but for the secret.
- v3: the `WiFi` schema of the 3.0 documentation (https://developer.cisco.com/meraki/scanning-api/3-0)
  filled with the values of Meraki's sample client (three APs, `rssiRecords` in dBm, `nearestApRssi`
  as a string as the schema declares it) plus an observation shaped like a real 3.0 post: no
  locations, only `latestRecord` with a numeric `nearestApRssi`.
"""

import copy

SECRET = "supersecret-0123456789"
VALIDATOR = "da6a17c407bb11dfeec7392a5042be0a4cc034b6"

V2_AP = "00:18:0a:13:dd:b0"
V2_CLIENT_MACS = ("18:fe:34:fc:5a:7f", "74:da:38:56:0a:80")
V3_NETWORK = "L_646829496481105433"
V3_CLIENT_MACS = ("11:22:33:44:55:66", "34:7e:5c:3f:b9:db")

# AP MACs written in other spellings than the payloads use: the map must match them anyway.
STORE_MAP = {
    "networks": {V3_NETWORK: "sh-network-store"},
    "aps": {"00-18-0A-13-DD-B0": "sh-xuhui-01", "AAAA.AA11.1111": "sh-ap-store"},
}

_V2 = {
    "version": "2.0",
    "secret": SECRET,
    "type": "DevicesSeen",
    "data": {
        "apMac": V2_AP,
        "apFloors": [],
        "apTags": ["dev", "entrance", "office"],
        "observations": [
            {
                "ipv4": "/192.168.0.38",
                "location": {"lat": 51.5355157, "lng": -0.06990350000000944, "unc": 1.233417960754815,
                             "x": [], "y": []},
                "seenTime": "2016-09-24T00:06:23Z",
                "ssid": ".interwebs",
                "os": None,
                "clientMac": V2_CLIENT_MACS[0],
                "seenEpoch": 1474675583,
                "rssi": 47,
                "ipv6": None,
                "manufacturer": "Espressif",
            },
            {
                "ipv4": "/192.168.0.15",
                "location": {"lat": 51.5355157, "lng": -0.06990350000000944, "unc": 1.5497743004111961,
                             "x": [], "y": []},
                "seenTime": "2016-09-24T00:06:40Z",
                "ssid": None,
                "os": "Generic Linux",
                "clientMac": V2_CLIENT_MACS[1],
                "seenEpoch": 1474675600,
                "rssi": 47,
                "ipv6": None,
                "manufacturer": "Edimax Technology",
            },
        ],
    },
}


def _location(time: str, records: list[tuple[str, int]], x: str, y: str) -> dict:
    return {
        "x": x, "y": y, "lng": 6.0957744807924485, "lat": 60.05342983801672, "variance": 1.6885258062410806,
        "floorPlanName": "3rd Floor", "floorPlanId": "g_643451796760560979",
        "nearestApTags": ["", "API-TEST", "Office", ""], "time": time,
        "rssiRecords": [{"apMac": mac, "rssi": rssi} for mac, rssi in records],
    }


_V3 = {
    "version": "3.0",
    "secret": SECRET,
    "type": "WiFi",
    "data": {
        "networkId": V3_NETWORK,
        "observations": [
            {
                "locations": [
                    _location("2019-11-28T14:27:21Z", [("aa:aa:aa:11:11:11", -32), ("aa:aa:aa:22:22:22", -54),
                                                       ("aa:aa:aa:33:33:33", -51)], "7.976651798199431",
                              "10.576847081490314"),
                    _location("2019-11-28T14:27:46Z", [("aa:aa:aa:11:11:11", -34), ("aa:aa:aa:22:22:22", -51),
                                                       ("aa:aa:aa:44:44:44", -30), ("aa:aa:aa:33:33:33", -51)],
                              "8.591860719528196", "11.404523745521399"),
                ],
                "ipv4": "192.168.0.251",
                "ssid": ".interwebs",
                "os": "iOS",
                "clientMac": V3_CLIENT_MACS[0],
                "latestRecord": {"time": "2019-11-28T14:27:46Z", "nearestApMac": "aa:aa:aa:44:44:44",
                                 "nearestApRssi": "-30"},
                "ipv6": None,
                "userId": None,
                "manufacturer": "Apple",
            },
            {
                "locations": [],
                "ipv4": None,
                "ssid": None,
                "os": None,
                "clientMac": V3_CLIENT_MACS[1],
                "latestRecord": {"time": "2021-11-23T14:01:49Z", "nearestApMac": "a8:46:9d:27:56:63",
                                 "nearestApRssi": -60},
                "ipv6": None,
                "manufacturer": "Sonos",
            },
        ],
    },
}


def meraki_v2(**changes) -> dict:
    payload = copy.deepcopy(_V2)
    payload.update(changes)
    return payload


def meraki_v3(**changes) -> dict:
    payload = copy.deepcopy(_V3)
    payload.update(changes)
    return payload
