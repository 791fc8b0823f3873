"""The rules file: shipped defaults, and every mistake refused at load with file, rule and key."""

from __future__ import annotations

import pytest
import yaml

from pipeline.rules import RULE_TYPES, RulesConfigError, load_rules, parse_rules
from pipeline.rules.config import CONTROL_PARAMS, DEFAULT_RULES_PATH, QUIET_DEFAULTS, parse_rules_text


def error_of(text: str) -> str:
    with pytest.raises(RulesConfigError) as caught:
        parse_rules_text(text, "shop.yaml")
    return str(caught.value)


def one_rule(rule_type: str, params: str = "", name: str | None = None) -> str:
    return f"rules:\n  - name: {name or rule_type}\n    type: {rule_type}\n    params: {{{params}}}\n"


# --- shipped defaults ------------------------------------------------------------------------------

def test_shipped_file_has_one_enabled_instance_of_every_rule_type():
    config = load_rules()
    assert [r.type for r in config.enabled()] == list(RULE_TYPES)
    assert config.source == str(DEFAULT_RULES_PATH)


def test_shipped_file_states_exactly_the_code_defaults():
    raw = yaml.safe_load(DEFAULT_RULES_PATH.read_text())
    for rule in raw["rules"]:
        specs = RULE_TYPES[rule["type"]].PARAMS
        assert rule["params"] == {key: spec.default for key, spec in specs.items()}, rule["name"]
    controls = raw["controls"]
    assert {key: controls[key] for key in CONTROL_PARAMS} == {k: s.default for k, s in CONTROL_PARAMS.items()}
    assert controls["quiet_hours"] == QUIET_DEFAULTS
    assert parse_rules({"rules": raw["rules"]}).controls == load_rules().controls


def test_shipped_file_documents_every_parameter_with_a_comment():
    lines = DEFAULT_RULES_PATH.read_text().splitlines()
    keys = {k for cls in RULE_TYPES.values() for k in cls.PARAMS} | set(CONTROL_PARAMS) | set(QUIET_DEFAULTS)
    for key in keys:
        documented = [line for line in lines if line.strip().startswith(f"{key}:") and "#" in line]
        assert documented, f"{key} has no comment in default_rules.yaml"


def test_omitted_controls_and_params_take_the_defaults():
    config = parse_rules_text(one_rule("share_invite"), "shop.yaml")
    assert config.rules[0].params == {"delay_h": 2, "points": 100}
    assert config.controls.cooldown_ms == 24 * 3_600_000 and config.controls.daily_cap == 3
    assert str(config.controls.quiet_hours) == "22:00-08:00 (hold)"
    assert config.controls.default_timezone == "Asia/Shanghai"


def test_several_instances_of_one_type_publish_on_their_own_topics():
    text = ("rules:\n"
            "  - {name: btv_week, type: browse_then_visit, params: {window_days: 7}}\n"
            "  - {name: btv_month, type: browse_then_visit, params: {window_days: 30}, enabled: false}\n")
    config = parse_rules_text(text)
    assert [r.topic() for r in config.rules] == ["o2o.triggers.btv_week", "o2o.triggers.btv_month"]
    assert [r.name for r in config.enabled()] == ["btv_week"]


def test_quiet_hours_null_switches_them_off_and_daily_cap_null_removes_the_cap():
    config = parse_rules_text("controls: {quiet_hours: null, daily_cap: null}\n")
    assert config.controls.quiet_hours is None and config.controls.daily_cap is None


def test_store_timezones_are_kept_per_store():
    config = parse_rules_text("controls:\n  store_timezones: {sg-01: Asia/Singapore, fr-01: Europe/Paris}\n")
    assert config.controls.store_timezones == {"sg-01": "Asia/Singapore", "fr-01": "Europe/Paris"}


# --- refused, with file, rule and key ---------------------------------------------------------------

def test_unknown_param_names_file_rule_and_key_with_a_suggestion():
    message = error_of(one_rule("browse_then_visit", "windw_days: 3", name="btv"))
    assert message.startswith("shop.yaml: rules[0] 'btv' (browse_then_visit): params.windw_days: unknown key")
    assert "did you mean 'window_days'" in message


def test_negative_window_is_refused():
    message = error_of(one_rule("browse_then_visit", "window_days: -1"))
    assert "params.window_days: must be a number > 0, got -1" in message


def test_zero_window_is_refused_but_zero_cooldown_is_allowed():
    assert "must be a number > 0, got 0" in error_of(one_rule("share_invite", "delay_h: 0"))
    assert parse_rules_text("controls: {cooldown_h: 0}\n").controls.cooldown_ms == 0


@pytest.mark.parametrize("params, expected", [
    ("max_skus: 2.5", "params.max_skus: must be an integer >= 1, got 2.5"),
    ("max_skus: '5'", "params.max_skus: must be an integer >= 1, got '5'"),
    ("max_skus: true", "params.max_skus: must be an integer >= 1, got True"),
    ("max_skus: null", "params.max_skus: must be an integer >= 1, got null"),
])
def test_wrong_types_are_refused_with_the_value(params, expected):
    assert expected in error_of(one_rule("browse_then_visit", params))


def test_vip_revenue_may_be_null_but_not_negative():
    assert parse_rules_text(one_rule("vip_arrival", "min_revenue_cents: null")).rules[0].params["min_revenue_cents"] is None
    assert "must be an integer >= 0 or null, got -5" in error_of(one_rule("vip_arrival", "min_revenue_cents: -5"))
    assert "params.tiers: must be a list of non-empty strings" in error_of(one_rule("vip_arrival", "tiers: gold"))


def test_unknown_rule_type_suggests_the_nearest():
    message = error_of("rules:\n  - {name: x, type: browse_than_visit}\n")
    assert "shop.yaml: rules[0] 'x': type: must be one of browse_then_visit" in message
    assert "did you mean 'browse_then_visit'" in message


def test_unknown_rule_key_is_refused():
    assert "rules[0] 'x' (share_invite): parms: unknown key (did you mean 'params'?)" in error_of(
        "rules:\n  - {name: x, type: share_invite, parms: {}}\n")


def test_rule_name_must_be_usable_as_a_topic():
    assert "rules[0]: name: must be lower-case letters" in error_of("rules:\n  - {name: Share Invite, type: share_invite}\n")
    assert "rules[0]: name: must be lower-case letters" in error_of("rules:\n  - {type: share_invite}\n")


def test_duplicate_rule_names_are_refused():
    text = "rules:\n  - {name: a, type: share_invite}\n  - {name: a, type: vip_arrival}\n"
    assert "rules[1]: name 'a' is used twice" in error_of(text)


def test_enabled_must_be_a_boolean():
    assert "enabled: must be true or false, got 'yes please'" in error_of(
        "rules:\n  - {name: a, type: share_invite, enabled: yes please}\n")


def test_bad_time_zone_is_refused():
    assert "shop.yaml: controls: default_timezone: unknown time zone 'Asia/Shangai'" in error_of(
        "controls: {default_timezone: Asia/Shangai}\n")
    assert "controls: store_timezones.sg-01: unknown time zone 'Singapore Time'" in error_of(
        "controls: {store_timezones: {sg-01: Singapore Time}}\n")


def test_unquoted_quiet_hour_is_explained():
    message = error_of("controls:\n  quiet_hours: {start: 22:00, end: '08:00'}\n")
    assert "controls: quiet_hours.start: write the time in quotes" in message and "1320" in message


@pytest.mark.parametrize("quiet, expected", [
    ("{start: '24:00'}", "quiet_hours.start: must be a local time \"HH:MM\""),
    ("{mode: later}", "quiet_hours.mode: must be drop or hold, got 'later'"),
    ("{start: '08:00', end: '08:00'}", "start and end are both 08:00"),
    ("{begin: '22:00'}", "quiet_hours.begin: unknown key"),
    ("'22-08'", "quiet_hours: must be a mapping"),
])
def test_bad_quiet_hours_are_refused(quiet, expected):
    assert expected in error_of(f"controls:\n  quiet_hours: {quiet}\n")


@pytest.mark.parametrize("controls, expected", [
    ("{cooldown_h: -1}", "controls: cooldown_h: must be a number >= 0, got -1"),
    ("{daily_cap: 0}", "controls: daily_cap: must be an integer >= 1 or null, got 0"),
    ("{cooldwn_h: 3}", "controls: cooldwn_h: unknown key (did you mean 'cooldown_h'?)"),
    ("[1, 2]", "controls: must be a mapping"),
])
def test_bad_controls_are_refused(controls, expected):
    assert expected in error_of(f"controls: {controls}\n")


def test_unknown_top_level_key_and_non_list_rules_are_refused():
    assert "shop.yaml: rule: unknown key (did you mean 'rules'?)" in error_of("rule: []\n")
    assert "shop.yaml: rules: must be a list" in error_of("rules: {a: 1}\n")


def test_yaml_syntax_error_names_the_line():
    assert error_of("rules:\n  - {name: a, type: [\n").startswith("shop.yaml: not valid YAML at line")


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(RulesConfigError, match="rules file not found"):
        load_rules(tmp_path / "nope.yaml")


def test_file_on_disk_is_read_and_named_in_errors(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(one_rule("abandoned_browse", "min_browses: 0"))
    with pytest.raises(RulesConfigError, match=f"^{path}: rules\\[0\\] 'abandoned_browse'"):
        load_rules(path)
    path.write_text(one_rule("abandoned_browse", "min_browses: 4"))
    assert load_rules(path).rules[0].params == {"min_browses": 4}


def test_aggregate_rule_params_are_checked():
    assert "params.threshold: must be an integer >= 1, got 0" in error_of(one_rule("store_complaint_spike", "threshold: 0"))
    assert "params.window_min: must be a number > 0, got -15" in error_of(one_rule("store_complaint_spike", "window_min: -15"))
    assert "params.days: must be a number > 0, got 0" in error_of(one_rule("lapsed_member", "days: 0"))
