"""KPI files: documented, with only known placeholders, filled safely from a validated period."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from sinks.kpis import (DASHBOARD_QUERIES, LATEST_MS, REPORT_KPIS, KpiError, Period, kpi, load_kpis, parse_time,
                        render)

DAY_MS = 86_400_000
NOV_22 = 1_795_305_600_000  # 2026-11-22T00:00:00Z


def test_every_query_file_is_in_the_report_or_a_dashboard():
    assert set(load_kpis()) == set(REPORT_KPIS) | set(DASHBOARD_QUERIES)


@pytest.mark.parametrize("name", sorted(set(REPORT_KPIS) | set(DASHBOARD_QUERIES)))
def test_each_kpi_documents_meaning_parameters_exactness_identity_and_columns(name):
    doc = kpi(name).doc

    for section in ("Meaning:", "Parameters:", "Exactness:", "Identity:", "Columns:"):
        assert section in doc, f"{name}.sql lacks '{section}'"
    assert kpi(name).title and not kpi(name).sql.startswith("--")


@pytest.mark.parametrize("name", sorted(set(REPORT_KPIS) | set(DASHBOARD_QUERIES)))
def test_persons_are_counted_through_the_identity_map(name):
    sql = kpi(name).sql
    if "person" in sql:
        assert "person_map" in sql, f"{name}.sql counts persons without re-pointing them"


@pytest.mark.parametrize("text, expected", [
    ("2026-11-22", NOV_22),
    ("2026-11-22T10:00", NOV_22 + 10 * 3_600_000),
    ("2026-11-22 10:00:00", NOV_22 + 10 * 3_600_000),
    ("2026-11-22T10:00:00Z", NOV_22 + 10 * 3_600_000),
    ("2026-11-22T18:00:00+08:00", NOV_22 + 10 * 3_600_000),
    ("2026-11-22T10:00:00.250+00:00", NOV_22 + 10 * 3_600_000 + 250),
])
def test_times_are_iso_dates_or_date_times_with_an_optional_offset(text, expected):
    assert parse_time(text) == expected


def test_a_time_without_offset_takes_the_default_zone():
    assert parse_time("2026-11-22", default_tz=timezone(timedelta(hours=8))) == NOV_22 - 8 * 3_600_000


@pytest.mark.parametrize("text", ["yesterday", "22/11/2026", "2026-13-01", "", "1969-12-31", "2200-01-01"])
def test_a_bad_time_says_what_to_send(text):
    with pytest.raises(KpiError, match="--from"):
        Period.parse(text, None)


def test_an_empty_period_is_refused():
    with pytest.raises(KpiError, match="--from must be before --to"):
        Period.parse("2026-11-23", "2026-11-22")


def test_defaults_cover_all_time():
    period = Period.parse(None, None)

    assert (period.from_ms, period.to_ms, period.store) == (0, LATEST_MS, None)


def test_render_fills_the_period_and_the_store_as_a_literal():
    sql = render("gmv", Period(NOV_22, NOV_22 + DAY_MS, "S1"))

    assert f"occurred_at_ms >= {NOV_22} AND occurred_at_ms < {NOV_22 + DAY_MS}" in sql
    assert "('S1' = '' OR store_id = 'S1')" in sql
    assert "{" not in sql


def test_render_without_a_store_keeps_every_store():
    assert "('' = '' OR store_id = '')" in render("footfall", Period(NOV_22, NOV_22 + DAY_MS))


def test_a_store_cannot_break_out_of_its_literal():
    sql = render("gmv", Period(NOV_22, NOV_22 + DAY_MS, "x' OR 1=1 --\\"))

    assert "store_id = 'x\\' OR 1=1 --\\\\'" in sql


@pytest.mark.parametrize("store", ["", "x" * 129, "a\nb"])
def test_a_bad_store_is_refused(store):
    with pytest.raises(KpiError, match="store"):
        Period(NOV_22, NOV_22 + DAY_MS, store)


def test_an_unknown_kpi_lists_the_known_ones():
    with pytest.raises(KpiError, match="footfall"):
        kpi("footfal")
