"""Keyed hashing of MAC addresses and phone numbers, done once at the first hop.

Raw identifiers never go past the ingest agent: `hash_identifiers` replaces `wifi_mac` by
`wifi_mac_hash` and `phone` by `phone_hash` (HMAC-SHA256, lowercase hex) and deletes the raw keys.

Normalisation makes the spellings of one identifier hash alike:

    MAC    'AA-BB-CC-00-11-22', 'aa:bb:cc:00:11:22', 'aabb.cc00.1122', 'AABBCC001122' -> 'aabbcc001122'
    phone  '+86 (138) 0013-8000' -> '+8613800138000';  '138 0013 8000' -> '13800138000'

Phone numbers are not re-written to E.164 (no country is guessed), so '+86 138...' and '138...'
hash differently; producers should send the form their system of record holds.

The HMAC message is '<kind>:<normalised>' ('mac:aabbcc001122'), so a MAC and a phone number can
never produce the same hash. Changing the secret changes every hash: identity links break.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

_MAC_SEPARATORS = str.maketrans("", "", ":-. ")
_MAC_HEX = re.compile(r"[0-9a-f]{12}")
_PHONE_SEPARATORS = str.maketrans("", "", " -()")
_PHONE = re.compile(r"\+?[0-9]{5,20}")
HASH_PATTERN = re.compile(r"[0-9a-f]{64}")


def normalise_mac(value: str) -> str | None:
    """12 lowercase hex digits, or None when `value` is not a MAC address."""
    compact = value.translate(_MAC_SEPARATORS).lower()
    return compact if _MAC_HEX.fullmatch(compact) else None


def normalise_phone(value: str) -> str | None:
    """Digits with an optional leading '+', separators removed; None when not a phone number."""
    compact = value.translate(_PHONE_SEPARATORS)
    return compact if _PHONE.fullmatch(compact) else None


def looks_hashed(value: str) -> bool:
    """True for a 64-hex-digit lowercase digest, the form of wifi_mac_hash and phone_hash."""
    return HASH_PATTERN.fullmatch(value) is not None


class IdentifierHasher:
    """HMAC-SHA256 with one secret, with a bounded cache (Wi-Fi probes repeat the same MACs)."""

    __slots__ = ("_key", "_cache", "_cache_size")

    def __init__(self, secret: bytes | str, cache_size: int = 100_000) -> None:
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if not key:
            raise ValueError("hash secret is empty; set hash_secret (O2O_HASH_SECRET) to a long random value")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self._key = hmac.new(key, digestmod=hashlib.sha256)
        self._cache: dict[str, str] = {}
        self._cache_size = cache_size

    def hash_mac(self, mac: str) -> str:
        """Hash of a MAC address in any common spelling. ValueError if it is not a MAC address."""
        normalised = normalise_mac(mac)
        if normalised is None:
            raise ValueError("wifi_mac is not a MAC address; expected 12 hex digits such as aa:bb:cc:00:11:22")
        return self._digest("mac:" + normalised)

    def hash_phone(self, phone: str) -> str:
        """Hash of a phone number. ValueError if it is not 5..20 digits with an optional leading '+'."""
        normalised = normalise_phone(phone)
        if normalised is None:
            raise ValueError(
                "phone is not a phone number; expected 5..20 digits with an optional leading '+' "
                "(spaces, dashes and parentheses are ignored)"
            )
        return self._digest("phone:" + normalised)

    def hash_identifiers(self, event: dict[str, Any]) -> None:
        """Replace raw `wifi_mac` / `phone` by their hashes in place; the raw keys are always removed.

        A raw value wins over a hash the producer also sent: it is what the hash is computed from.
        An invalid raw value raises ValueError after the raw keys are already gone, so a caller that
        sends the event to the dead-letter queue never carries the raw value along.
        """
        mac = event.pop("wifi_mac", None)
        phone = event.pop("phone", None)
        if mac is not None:
            event["wifi_mac_hash"] = self.hash_mac(mac)
        if phone is not None:
            event["phone_hash"] = self.hash_phone(phone)

    def _digest(self, message: str) -> str:
        cached = self._cache.get(message)
        if cached is not None:
            return cached
        mac = self._key.copy()
        mac.update(message.encode())
        digest = mac.hexdigest()
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        if self._cache_size:
            self._cache[message] = digest
        return digest


def hash_mac(mac: str, secret: bytes | str) -> str:
    return IdentifierHasher(secret, cache_size=0).hash_mac(mac)


def hash_phone(phone: str, secret: bytes | str) -> str:
    return IdentifierHasher(secret, cache_size=0).hash_phone(phone)


def hash_identifiers(event: dict[str, Any], secret: bytes | str) -> None:
    """One-off form of `IdentifierHasher(secret).hash_identifiers(event)`; agents keep a hasher."""
    IdentifierHasher(secret, cache_size=0).hash_identifiers(event)

