"""The warehouse migrations on ClickHouse 18.16 (the Debian server) and current ClickHouse (chdb).

Each migration file runs as SQL text on both engines; `apply_migrations` applies them once, records
them once and refuses a file edited after it was applied; and the schema it leaves is exactly the
one `sinks/tables.py` defines (columns, types, defaults, engines, keys).
"""

from __future__ import annotations

import re

import pytest

from sinks.chdb_client import ChdbClient
from sinks.migrate import MigrationError, applied_migrations, apply_migrations, load_migrations
from sinks.tables import OBJECTS, SCHEMA_MIGRATIONS, TABLES, MaterializedView, View, rows_for
from tests.sql import warehouse_fixture as fixture

ENGINES = fixture.ENGINES


@pytest.fixture(scope="module")
def fresh_database(stack, modern_clickhouse):
    yield from fixture.databases(stack, modern_clickhouse)


def _keys(expression: str | None) -> str:
    return re.sub(r"[\s()]", "", expression or "")


def expected_schema() -> dict[str, tuple]:
    """What tables.py defines, in the shape `actual_schema` reads back."""
    schema: dict[str, tuple] = {}
    for name, obj in OBJECTS.items():
        if isinstance(obj, MaterializedView):
            schema[name] = ("MaterializedView",)
        elif isinstance(obj, View):
            schema[name] = ("View",)
        else:
            columns = tuple((c.name, c.type, getattr(c, "default", None) or "") for c in obj.columns)
            schema[name] = (obj.engine.split("(")[0], _keys(obj.order_by), _keys(obj.partition_by), columns)
    return schema


def actual_schema(client) -> dict[str, tuple]:
    schema: dict[str, tuple] = {}
    tables = client.execute(
        "SELECT name, engine, sorting_key, partition_key FROM system.tables "
        "WHERE database = currentDatabase() AND name != 'schema_migrations'")
    for name, engine, sorting_key, partition_key in tables:
        if engine in ("View", "MaterializedView"):
            schema[name] = (engine,)
            continue
        columns = tuple(client.execute(
            "SELECT name, type, default_expression FROM system.columns "
            f"WHERE database = currentDatabase() AND table = '{name}'"))  # in column order
        schema[name] = (engine, _keys(sorting_key), _keys(partition_key), columns)
    return schema


def test_each_migration_file_runs_as_sql_text_on_the_debian_server(server_sql, clickhouse_db):
    for migration in load_migrations():
        for statement in migration.statements:
            server_sql.run(statement)

    assert actual_schema(clickhouse_db) == expected_schema()


def test_each_migration_file_runs_as_sql_text_on_current_clickhouse(fresh_database):
    client, name = fresh_database("chdb")
    client.execute(f"CREATE DATABASE {name}")
    client.execute(f"USE {name}")
    for migration in load_migrations():
        for statement in migration.statements:
            client.session.query(statement)  # as text, straight to the engine

    assert actual_schema(client) == expected_schema()


@pytest.mark.parametrize("engine", ENGINES)
def test_apply_migrations_creates_the_database_and_the_schema_tables_py_defines(fresh_database, engine):
    client, name = fresh_database(engine)

    applied = apply_migrations(client, name)

    assert applied == [m.name for m in load_migrations()]
    assert client.execute("SELECT currentDatabase()") == [(name,)]
    assert actual_schema(client) == expected_schema()


@pytest.mark.parametrize("engine", ENGINES)
def test_applying_migrations_twice_changes_nothing_and_records_each_once(fresh_database, engine):
    client, name = fresh_database(engine)
    first = apply_migrations(client, name)
    schema = actual_schema(client)

    second = apply_migrations(client, name)

    assert second == []
    assert actual_schema(client) == schema
    assert applied_migrations(client) == first
    assert client.execute("SELECT count(), uniqExact(name) FROM schema_migrations") == [(len(first), len(first))]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_migration_edited_after_it_was_applied_is_refused(fresh_database, engine):
    client, name = fresh_database(engine)
    apply_migrations(client, name)
    records = [{"name": m.name, "checksum": m.checksum, "applied_at_ms": 0} for m in load_migrations()]
    records[0]["checksum"] = "0" * 64
    client.execute("TRUNCATE TABLE schema_migrations")
    client.execute(SCHEMA_MIGRATIONS.insert_sql(), rows_for("schema_migrations", records), columnar=True)

    with pytest.raises(MigrationError, match="0001_events.sql was applied .* with a different text"):
        apply_migrations(client, name)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_database_migrated_by_a_newer_version_is_refused(fresh_database, engine):
    client, name = fresh_database(engine)
    apply_migrations(client, name)
    client.execute(SCHEMA_MIGRATIONS.insert_sql(), rows_for(
        "schema_migrations", [{"name": "0999_from_the_future.sql", "checksum": "x", "applied_at_ms": 0}]), columnar=True)

    with pytest.raises(MigrationError, match="0999_from_the_future.sql"):
        apply_migrations(client, name)


def test_every_table_is_in_a_migration():
    created = {re.search(r"CREATE (?:MATERIALIZED )?(?:VIEW|TABLE) IF NOT EXISTS (\w+)", s).group(1)
               for m in load_migrations() for s in m.statements}
    assert created == set(OBJECTS) and set(TABLES) <= created


def test_chdb_client_round_trips_the_types_the_warehouse_uses(fresh_database):
    client, name = fresh_database("chdb")
    client.execute(f"CREATE DATABASE {name}")
    client.execute(f"USE {name}")

    rows, columns = client.execute(
        "SELECT toInt64(-3) AS i, [toUInt32(1), 2] AS a, tuple('x', toInt64(5)) AS t, CAST(NULL, 'Nullable(String)') AS n, "
        "toDateTime(1795312800, 'UTC') AS d, 0.5 AS f", with_column_types=True)

    assert isinstance(client, ChdbClient)
    assert [c for c, _ in columns] == ["i", "a", "t", "n", "d", "f"]
    assert rows[0][:4] == (-3, [1, 2], ("x", 5), None)
    assert rows[0][4].isoformat() == "2026-11-22T02:00:00+00:00" and rows[0][5] == 0.5
