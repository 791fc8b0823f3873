"""Trigger rules: the pure rule engine over the journey stage's output (no I/O, event time).

    from pipeline.rules import RuleEngine, load_rules
    engine = RuleEngine(load_rules("rules.yaml"), settings.journey_policy())
    out = engine.on_batch(pairs, journey_batch)   # RuleOutput(triggers, suppressed, held)

Map of the package (where a rule fires: its module; how the controls decide: controls.py):

    engine.py                 RuleEngine: feeds the rules, timers, merges, state and changelog
    config.py                 the rules file: load_rules(), validation, RULE_TYPES
    default_rules.yaml        shipped defaults, every parameter documented
    controls.py               consent, complaint suppression, cooldown, daily cap, quiet hours
    trigger.py                the Trigger record, its deterministic id, Suppressed, Held, RuleOutput
    state.py                  what is remembered per person, merges, expiry
    arrival.py                when a store visit counts as "now in the store"
    browse_then_visit.py      vip_arrival.py      share_invite.py      complaint_recovery.py
    abandoned_browse.py       store_complaint_spike.py (aggregate)     lapsed_member.py (aggregate)
"""

from pipeline.rules.config import RULE_TYPES, RuleSpec, RulesConfig, RulesConfigError, load_rules, parse_rules
from pipeline.rules.engine import RuleEngine
from pipeline.rules.trigger import MARKETING, REASONS, SERVICE, Held, RuleOutput, Suppressed, Trigger, trigger_id

__all__ = ["MARKETING", "REASONS", "RULE_TYPES", "SERVICE", "Held", "RuleEngine", "RuleOutput", "RuleSpec",
           "RulesConfig", "RulesConfigError", "Suppressed", "Trigger", "load_rules", "parse_rules", "trigger_id"]
