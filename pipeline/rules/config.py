"""The rules file: which rule instances run, with which parameters, under which marketing controls.

    controls:
      cooldown_h: 24
      daily_cap: 3
      quiet_hours: {start: "22:00", end: "08:00", mode: hold}
      default_timezone: Asia/Shanghai
      store_timezones: {sg-orchard-01: Asia/Singapore}
    rules:
      - name: browse_then_visit          # topic o2o.triggers.browse_then_visit
        type: browse_then_visit
        enabled: true
        params: {window_days: 7, max_skus: 5}

`pipeline/rules/default_rules.yaml` ships the defaults with every parameter documented; a file
may leave out `controls` (or any key of it) and any `params` key to get the defaults below. Several
instances of one type are allowed under different names. Everything is checked at load time and
the first problem is reported with the file, the rule and the key, e.g.

    shop.yaml: rules[1] 'vip' (vip_arrival): params.min_revenue_cents: must be an integer >= 0, got -5

Defaults live here and in each rule type's `PARAMS` (one source of truth); a test keeps the shipped
YAML equal to them.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from pipeline.rules.abandoned_browse import AbandonedBrowse
from pipeline.rules.browse_then_visit import BrowseThenVisit
from pipeline.rules.complaint_recovery import ComplaintRecovery
from pipeline.rules.lapsed_member import LapsedMember
from pipeline.rules.params import Param, hours_ms
from pipeline.rules.share_invite import ShareInvite
from pipeline.rules.store_complaint_spike import StoreComplaintSpike
from pipeline.rules.vip_arrival import VipArrival

# Every rule type, by its `type:` in the file. Where each one fires: its module (see its docstring).
RULE_TYPES: dict[str, type] = {cls.TYPE: cls for cls in (
    BrowseThenVisit, VipArrival, ShareInvite, ComplaintRecovery, AbandonedBrowse, StoreComplaintSpike, LapsedMember)}

DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")
# A rule name becomes a Kafka topic suffix and a metric label.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
QUIET_MODES = ("drop", "hold")

CONTROL_PARAMS = {
    "cooldown_h": Param("number", 24, "hours before the same rule may fire again for a person", minimum=0),
    "daily_cap": Param("int", 3, "marketing triggers per person per local day, all rules; null: no cap",
                       minimum=1, nullable=True),
    "default_timezone": Param("str", "Asia/Shanghai", "IANA zone for quiet hours and days"),
}
QUIET_DEFAULTS = {"start": "22:00", "end": "08:00", "mode": "hold"}
_TOP_KEYS = ("controls", "rules")
_CONTROL_KEYS = (*CONTROL_PARAMS, "quiet_hours", "store_timezones")
_RULE_KEYS = ("name", "type", "enabled", "params")


class RulesConfigError(ValueError):
    """A rules file that cannot run; the message names the file, the rule and the key."""


@dataclass(frozen=True, slots=True)
class QuietHours:
    start_minute: int  # minutes after local midnight; quiet from here ...
    end_minute: int    # ... until here (exclusive), wrapping midnight when start > end
    mode: str          # drop | hold

    def __str__(self) -> str:
        return f"{_hhmm(self.start_minute)}-{_hhmm(self.end_minute)} ({self.mode})"


@dataclass(frozen=True, slots=True)
class ControlsConfig:
    cooldown_ms: int = hours_ms(24)
    daily_cap: int | None = 3
    quiet_hours: QuietHours | None = QuietHours(22 * 60, 8 * 60, "hold")
    default_timezone: str = "Asia/Shanghai"
    store_timezones: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    type: str
    enabled: bool
    params: dict[str, Any]  # every parameter of the type, defaults filled in

    @property
    def kind(self) -> str:
        return RULE_TYPES[self.type].KIND

    def topic(self, prefix: str = "o2o") -> str:
        return f"{prefix}.triggers.{self.name}"

    def compile(self) -> Any:
        """The rule object the engine calls (an instance of the type's class)."""
        return RULE_TYPES[self.type](self)


@dataclass(frozen=True, slots=True)
class RulesConfig:
    rules: tuple[RuleSpec, ...]
    controls: ControlsConfig
    source: str = "<defaults>"

    def enabled(self) -> list[RuleSpec]:
        return [rule for rule in self.rules if rule.enabled]

    def rule(self, name: str) -> RuleSpec:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(f"no rule named {name!r} in {self.source}; rules: {', '.join(r.name for r in self.rules)}")


# --- loading -----------------------------------------------------------------------------------

def load_rules(path: str | Path | None = None) -> RulesConfig:
    """Read and check a rules file (YAML); None reads the shipped `default_rules.yaml`."""
    path = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesConfigError(f"{path}: rules file not found; pass an existing YAML file, or none for the "
                               f"shipped defaults ({DEFAULT_RULES_PATH})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesConfigError(f"{path}: cannot read the rules file ({exc})") from None
    return parse_rules_text(text, str(path))


def parse_rules_text(text: str, source: str = "<string>") -> RulesConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RulesConfigError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_rules(data if data is not None else {}, source)


def parse_rules(data: Any, source: str = "<dict>") -> RulesConfig:
    """Check already-parsed data (a mapping with `controls` and `rules`)."""
    if not isinstance(data, dict):
        raise RulesConfigError(f"{source}: expected a mapping with keys controls and rules, "
                               f"got {type(data).__name__}")
    _refuse_unknown(source, "", data, _TOP_KEYS)
    controls = _parse_controls(source, data.get("controls"))
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise RulesConfigError(f"{source}: rules: must be a list of rules ({{name, type, enabled, params}}), "
                               f"got {type(raw_rules).__name__}")
    rules: list[RuleSpec] = []
    for index, raw in enumerate(raw_rules):
        rule = _parse_rule(source, index, raw)
        if any(other.name == rule.name for other in rules):
            raise RulesConfigError(f"{source}: rules[{index}]: name {rule.name!r} is used twice; "
                                   "each rule instance needs its own name (it is its topic)")
        rules.append(rule)
    return RulesConfig(tuple(rules), controls, source)


def _parse_rule(source: str, index: int, raw: Any) -> RuleSpec:
    where = f"{source}: rules[{index}]"
    if not isinstance(raw, dict):
        raise RulesConfigError(f"{where}: must be a mapping with keys name, type, enabled, params, "
                               f"got {type(raw).__name__}")
    name = raw.get("name")
    if type(name) is not str or not NAME_PATTERN.match(name):
        raise RulesConfigError(f"{where}: name: must be lower-case letters, digits and _ (starting with a "
                               f"letter, at most 63), e.g. browse_then_visit; got {name!r}")
    where = f"{where} {name!r}"
    rule_type = raw.get("type")
    known_type = type(rule_type) is str and rule_type in RULE_TYPES
    if known_type:
        _refuse_unknown(f"{where} ({rule_type})", "", raw, _RULE_KEYS)
    else:
        _refuse_unknown(where, "", raw, _RULE_KEYS)  # a misspelt `type:` key explains a missing type
        hint = _suggest(rule_type, RULE_TYPES) if type(rule_type) is str else ""
        raise RulesConfigError(f"{where}: type: must be one of {', '.join(RULE_TYPES)}, got {rule_type!r}{hint}")
    where = f"{where} ({rule_type})"
    enabled = raw.get("enabled", True)
    if type(enabled) is not bool:
        raise RulesConfigError(f"{where}: enabled: must be true or false, got {enabled!r}")
    raw_params = raw.get("params")
    raw_params = {} if raw_params is None else raw_params
    if not isinstance(raw_params, dict):
        raise RulesConfigError(f"{where}: params: must be a mapping, got {type(raw_params).__name__}")
    specs: dict[str, Param] = RULE_TYPES[rule_type].PARAMS
    _refuse_unknown(where, "params.", raw_params, tuple(specs))
    params = {key: _check(where, f"params.{key}", spec, raw_params.get(key, spec.default))
              for key, spec in specs.items()}
    return RuleSpec(name, rule_type, enabled, params)


def _parse_controls(source: str, raw: Any) -> ControlsConfig:
    where = f"{source}: controls"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RulesConfigError(f"{where}: must be a mapping, got {type(raw).__name__}")
    _refuse_unknown(where, "", raw, _CONTROL_KEYS)
    values = {key: _check(where, key, spec, raw.get(key, spec.default)) for key, spec in CONTROL_PARAMS.items()}
    default_zone = _zone(where, "default_timezone", values["default_timezone"])
    stores = raw.get("store_timezones") or {}
    if not isinstance(stores, dict):
        raise RulesConfigError(f"{where}: store_timezones: must be a mapping of store id to time zone, "
                               f"got {type(stores).__name__}")
    store_zones = {str(store): _zone(where, f"store_timezones.{store}", zone) for store, zone in stores.items()}
    return ControlsConfig(hours_ms(values["cooldown_h"]), values["daily_cap"],
                          _parse_quiet(where, raw.get("quiet_hours", QUIET_DEFAULTS)), default_zone, store_zones)


def _parse_quiet(where: str, raw: Any) -> QuietHours | None:
    if raw is None:
        return None  # quiet_hours: null switches quiet hours off
    if not isinstance(raw, dict):
        raise RulesConfigError(f"{where}: quiet_hours: must be a mapping {{start, end, mode}} or null (off), "
                               f"got {type(raw).__name__}")
    _refuse_unknown(where, "quiet_hours.", raw, tuple(QUIET_DEFAULTS))
    start = _minute_of_day(where, "quiet_hours.start", raw.get("start", QUIET_DEFAULTS["start"]))
    end = _minute_of_day(where, "quiet_hours.end", raw.get("end", QUIET_DEFAULTS["end"]))
    mode = raw.get("mode", QUIET_DEFAULTS["mode"])
    if mode not in QUIET_MODES:
        raise RulesConfigError(f"{where}: quiet_hours.mode: must be drop or hold, got {mode!r}")
    if start == end:
        raise RulesConfigError(f"{where}: quiet_hours: start and end are both {_hhmm(start)}; "
                               "give a real window, or quiet_hours: null to switch quiet hours off")
    return QuietHours(start, end, mode)


def _minute_of_day(where: str, key: str, value: Any) -> int:
    if type(value) is int:
        # YAML 1.1 reads an unquoted 22:00 as the base-60 number 1320.
        raise RulesConfigError(f"{where}: {key}: write the time in quotes, e.g. \"22:00\" "
                               f"(unquoted, YAML reads it as the number {value})")
    match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", value) if type(value) is str else None
    if match is None:
        raise RulesConfigError(f"{where}: {key}: must be a local time \"HH:MM\" (00:00 to 23:59), got {value!r}")
    return int(match[1]) * 60 + int(match[2])


def _zone(where: str, key: str, name: Any) -> str:
    if type(name) is not str or not name:
        raise RulesConfigError(f"{where}: {key}: must be an IANA time zone name such as Asia/Shanghai, got {name!r}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RulesConfigError(f"{where}: {key}: unknown time zone {name!r}; use an IANA name such as "
                               "Asia/Shanghai or Europe/Paris") from None
    return name


def _check(where: str, key: str, spec: Param, value: Any) -> Any:
    try:
        return spec.check(value)
    except ValueError as exc:
        raise RulesConfigError(f"{where}: {key}: {exc}") from None


def _refuse_unknown(where: str, prefix: str, raw: dict[str, Any], known: tuple[str, ...]) -> None:
    for key in raw:
        if key not in known:
            hint = _suggest(str(key), known)
            raise RulesConfigError(f"{where}: {prefix}{key}: unknown key{hint}; accepted: {', '.join(known)}")


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
