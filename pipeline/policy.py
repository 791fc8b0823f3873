"""The journey core's tunables, checked when made: a bad value is a ValueError naming it.

Kept apart from the modules they tune (`sessions`, `visits`, `journey`), which run compiled
(`pipeline/compiled.py`): there a class's typed fields would reject a wrong type with a bare
TypeError before `__post_init__` could say what is wrong. These stay plain Python classes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """gap_ms: inactivity that ends a session (30 min, the web analytics convention).
    max_length_ms: longest session (8 h); longer activity is cut, so an always-on device, e.g. a
    staff phone on the store Wi-Fi, does not make one endless session."""

    gap_ms: int = 30 * 60_000
    max_length_ms: int = 8 * 3600_000

    def __post_init__(self) -> None:
        if not isinstance(self.gap_ms, int) or self.gap_ms <= 0:
            raise ValueError(f"session gap_ms must be a positive integer of milliseconds, got {self.gap_ms!r}")
        if not isinstance(self.max_length_ms, int) or self.max_length_ms < self.gap_ms:
            raise ValueError(f"session max_length_ms must be an integer >= gap_ms ({self.gap_ms}), "
                             f"got {self.max_length_ms!r}")


@dataclass(frozen=True, slots=True)
class VisitPolicy:
    """timeout_ms ends a visit after silence; dwell and RSSI thresholds make a visitor."""

    timeout_ms: int = 15 * 60_000
    visitor_min_dwell_ms: int = 5 * 60_000
    visitor_min_rssi_dbm: int = -70

    def __post_init__(self) -> None:
        if not isinstance(self.timeout_ms, int) or self.timeout_ms <= 0:
            raise ValueError(f"visit timeout_ms must be a positive integer of milliseconds, got {self.timeout_ms!r}")
        if not isinstance(self.visitor_min_dwell_ms, int) or self.visitor_min_dwell_ms < 0:
            raise ValueError("visit visitor_min_dwell_ms must be an integer >= 0 milliseconds, "
                             f"got {self.visitor_min_dwell_ms!r}")
        if not isinstance(self.visitor_min_rssi_dbm, int) or not -120 <= self.visitor_min_rssi_dbm <= 0:
            raise ValueError("visit visitor_min_rssi_dbm must be an integer dBm between -120 and 0, "
                             f"got {self.visitor_min_rssi_dbm!r}")


@dataclass(frozen=True, slots=True)
class JourneyPolicy:
    """allowed_lateness_ms: how far behind the watermark an event may be and still count."""

    allowed_lateness_ms: int = 60 * 60_000
    sessions: SessionPolicy = SessionPolicy()
    visits: VisitPolicy = VisitPolicy()

    def __post_init__(self) -> None:
        if not isinstance(self.allowed_lateness_ms, int) or self.allowed_lateness_ms < 0:
            raise ValueError("journey allowed_lateness_ms must be an integer >= 0 milliseconds, "
                             f"got {self.allowed_lateness_ms!r}")
