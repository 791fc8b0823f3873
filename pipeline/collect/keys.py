"""API keys: `Authorization: Bearer <key>` -> who is sending (source id), what it may send, its rate.

Keys come from settings (`collector_api_keys`, `collector_api_keys_file`); none is built in. They
are looked up by their SHA-256, so the lookup time does not depend on how much of a key matches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable

from pipeline.events import EVENT_TYPES


@dataclass(frozen=True, slots=True)
class ApiKey:
    source: str
    types: frozenset[str]
    rate_per_s: float
    burst: int
    label: str  # safe to log and count by: the source and a short digest of the key, never the key

    def allows(self, event_type: str) -> bool:
        return event_type in self.types


class AuthError(Exception):
    """401: the message says what was wrong with the Authorization header."""


class KeyRing:
    def __init__(self, keys: Iterable[tuple[str, ApiKey]]) -> None:
        self._by_digest = {_digest(secret): key for secret, key in keys}

    @classmethod
    def from_settings(cls, settings) -> "KeyRing":
        """From `Settings.collector_keys()`, with the default rate limit for keys that set none."""
        entries = []
        for spec in settings.collector_keys():
            secret = spec.key.get_secret_value()
            entries.append((secret, ApiKey(
                source=spec.source,
                types=frozenset(spec.types if spec.types is not None else EVENT_TYPES),
                rate_per_s=spec.rate_limit_events_per_s or settings.collector_rate_limit_events_per_s,
                burst=spec.rate_limit_burst or settings.collector_rate_limit_burst,
                label=f"{spec.source}:{_digest(secret)[:8]}",
            )))
        return cls(entries)

    def __len__(self) -> int:
        return len(self._by_digest)

    def authenticate(self, authorization: str | None) -> ApiKey:
        """The key named by an Authorization header value; AuthError when missing or unknown."""
        if not authorization:
            raise AuthError("missing Authorization header; send 'Authorization: Bearer <api key>'")
        scheme, _, secret = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise AuthError("the Authorization header must be 'Bearer <api key>'")
        key = self._by_digest.get(_digest(secret.strip()))
        if key is None:
            raise AuthError("unknown API key; check it, or ask the operator to add it to collector_api_keys")
        return key


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
