"""The HTTP collector's pure logic: everything between the bytes of a request and the events it holds.

No I/O and no clock reads here (times are passed in); `agents/collector.py` is the aiohttp server
around it. The pieces, in the order a request meets them:

| module       | what                                                                          |
| ------------ | ----------------------------------------------------------------------------- |
| `keys`       | `Authorization: Bearer <key>` -> the key's source id, allowed types and rate  |
| `body`       | gzip, then a JSON array or JSON lines -> a list of items (or a `BodyError`)   |
| `ratelimit`  | a token bucket per key, counted in events                                     |
| `intake`     | per event: the key's rules (allowed types, source id) before validation       |
| `meraki`     | Cisco Meraki Scanning API v2/v3 posts -> canonical `wifi_checkin` events      |
| `gateway`    | the generic gateway format -> canonical `wifi_checkin` events                 |
| `stores`     | network id / AP MAC -> store id; AP MAC spellings normalised                  |
| `sightings`  | one Wi-Fi sighting -> one canonical event (hashed MAC, deterministic id)      |
| `stats`      | counts since start, by source, type and reason                                |

Client MACs are hashed (`pipeline.privacy`) as soon as a gateway payload is read: the events these
modules build carry `wifi_mac_hash`, never the raw value, and no detail they write echoes one.
"""
