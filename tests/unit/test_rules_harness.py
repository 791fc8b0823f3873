"""Helpers for the rule tests: journey + rules run together the way the agent runs them.

`Pipeline` feeds events through a JourneyProcessor and hands the RuleEngine the (person, event)
pairs it resolved and the JourneyBatch, collecting what the rules published, suppressed and held.
Times are minutes after T0 = 2026-11-22T02:00:00Z (10:00 in Asia/Shanghai), as in journey_events.
"""

from __future__ import annotations

from typing import Any

from journey_events import MINUTE, T0, at, browse, checkin, event, purchase

from pipeline.journey import JourneyBatch, JourneyPolicy, JourneyProcessor
from pipeline.rules import RuleEngine, RuleOutput, parse_rules
from pipeline.rules.config import RulesConfig
from pipeline.rules.state import PLAIN_FIELDS

HOUR = 60 * MINUTE
DAY = 24 * HOUR
NO_QUIET = {"quiet_hours": None}

__all__ = ["DAY", "HOUR", "MINUTE", "NO_QUIET", "T0", "Pipeline", "at", "browse", "checkin", "complaint",
           "config", "event", "person_state", "purchase", "share", "shanghai"]


def config(*rules: dict[str, Any], **controls: Any) -> RulesConfig:
    """A rules config of the given rule dicts ({"type": ..., "params": {...}}; name defaults to the type)."""
    return parse_rules({"rules": [{"name": r.get("name", r["type"]), **r} for r in rules], "controls": controls},
                       "test.yaml")


def person_state(engine: RuleEngine, person_id: str) -> dict[str, Any] | None:
    """A person's state in the engine's snapshot, by field name (None when the engine has none)."""
    plain = engine.snapshot().get("p:" + person_id)
    return dict(zip(PLAIN_FIELDS, plain)) if plain is not None else None


def complaint(event_id: str, minute: float, **fields: Any) -> dict[str, Any]:
    return event(event_id, minute, "complaint", **fields)


def share(event_id: str, minute: float, **fields: Any) -> dict[str, Any]:
    return event(event_id, minute, "share", **fields)


def shanghai(day: int, hh: int, mm: int = 0) -> float:
    """Minutes after T0 of local time hh:mm in Asia/Shanghai, `day` days after 2026-11-22."""
    return day * 24 * 60 + (hh - 10) * 60 + mm


class Pipeline:
    def __init__(self, rules: RulesConfig, policy: JourneyPolicy = JourneyPolicy(), track_changes: bool = False,
                 engine: RuleEngine | None = None, journey: JourneyProcessor | None = None) -> None:
        self.policy = policy
        self.journey = journey or JourneyProcessor(policy)
        self.engine = engine or RuleEngine(rules, policy, track_changes)
        self.out = RuleOutput()

    def feed(self, *events: dict[str, Any], batch_size: int | None = None) -> RuleOutput:
        """Events in arrival order, in batches of `batch_size` (default: one batch)."""
        result = RuleOutput()
        size = batch_size or max(1, len(events))
        for i in range(0, len(events), size):
            pairs, batch = self.resolve(list(events[i:i + size]))
            result.extend(self.engine.on_batch(pairs, batch))
        self.out.extend(result)
        return result

    def resolve(self, events: list[dict[str, Any]]) -> tuple[list[tuple[str, dict[str, Any]]], JourneyBatch]:
        """JourneyProcessor.process: the (person, event) pairs it resolved, and the batch."""
        batch = self.journey.process(events)
        return batch.resolved, batch

    def advance(self, minute: float) -> RuleOutput:
        return self.advance_to(at(minute))

    def advance_to(self, ms: int) -> RuleOutput:
        """A quiet stream: the journey and the rules move event time to `ms` (epoch ms)."""
        result = self.engine.on_batch([], self.journey.advance(ms))
        result.extend(self.engine.advance(ms))
        self.out.extend(result)
        return result

    def close_all(self) -> RuleOutput:
        result = self.engine.on_batch([], self.journey.close_all())
        result.extend(self.engine.finish())
        self.out.extend(result)
        return result

    def fired(self, rule: str | None = None) -> list:
        return [t for t in self.out.triggers if rule is None or t.rule == rule]

    def reasons(self, rule: str | None = None) -> list[str]:
        return [s.reason for s in self.out.suppressed if rule is None or s.trigger.rule == rule]


def test_harness_hands_the_engine_one_pair_per_event_with_its_person():
    pipeline = Pipeline(config())
    pairs, batch = pipeline.resolve([browse("b1", 0, device_id="d1"), browse("b2", 1, member_id="42", device_id="d1")])
    assert [(p, e["event_id"]) for p, e in pairs] == [("d:d1", "b1"), ("m:42", "b2")]
    assert [(m.from_person, m.to_person, m.event_id) for m in batch.merges] == [("d:d1", "m:42", "b2")]
