"""The harness that later features use to prove their SQL runs on ClickHouse 18.16 and current ClickHouse."""

from pathlib import Path

SQL = Path(__file__).parent.parent / "sql" / "harness_smoke.sql"
EXPECTED = ['"browse",2\n"visit",2', "1"]


def answers(outputs: list[str]) -> list[str]:
    return [out.strip() for out in outputs if out.strip()]


def test_harness_sql_gives_the_expected_answers_on_the_debian_server(server_sql):
    assert answers(server_sql.run_file(SQL)) == EXPECTED


def test_harness_sql_gives_the_same_answers_on_current_clickhouse(modern_clickhouse):
    modern_clickhouse.run("CREATE DATABASE IF NOT EXISTS harness")
    modern_clickhouse.run("USE harness")

    assert answers(modern_clickhouse.run_file(SQL)) == EXPECTED
