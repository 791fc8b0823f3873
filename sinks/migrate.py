"""Versioned schema migrations: `sinks/migrations/NNNN_<what>.sql`, applied in order, recorded once.

    applied = apply_migrations(client, "o2o")   # names applied by this call; [] when up to date

The client is a clickhouse-driver `Client` (or anything with the same `execute`), connected to any
database that exists (e.g. `default`: the target may not exist yet). The target database is
created if missing and made the client's current database (`USE`), so the unqualified names in the
migration files resolve there, and the client works in it afterwards.

Each file is reviewed text, normally one statement (statements are separated by ';' at a line end;
'--' comment lines are ignored). Applying is idempotent twice over: applied files are skipped (by
name, recorded in `schema_migrations`), and every statement is `CREATE ... IF NOT EXISTS`, so a
run interrupted between a statement and its record is safely re-run. A file changed after it was
applied is an error: migrations are append-only, so add a new one.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sinks.tables import SCHEMA_MIGRATIONS

MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MigrationError(Exception):
    """A migration set or database state that cannot be applied; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Migration:
    name: str  # file name, e.g. '0001_events.sql'
    text: str

    @property
    def number(self) -> int:
        return int(self.name[:4])

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def statements(self) -> list[str]:
        return split_statements(self.text)


def split_statements(text: str) -> list[str]:
    """Statements separated by ';' at a line end; '--' comment lines dropped; empty ones skipped."""
    lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
    statements = []
    for chunk in re.split(r";[ \t]*(?:\n|$)", "\n".join(lines)):
        if chunk.strip():
            statements.append(chunk.strip())
    return statements


def load_migrations() -> list[Migration]:
    """The migration files, in order; numbered 0001, 0002, ... without gaps or repeats."""
    folder = resources.files("sinks").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            if not MIGRATION_NAME.match(entry.name):
                raise MigrationError(f"migration file {entry.name!r} is not named NNNN_lowercase_words.sql; rename it")
            found.append(Migration(entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.name)
    for expected, migration in enumerate(found, 1):
        if migration.number != expected:
            raise MigrationError(f"migration {migration.name} should be numbered {expected:04d}: numbers run "
                                 "1, 2, 3... without gaps or repeats")
        if not migration.statements:
            raise MigrationError(f"migration {migration.name} holds no statement")
    return found


def apply_migrations(client: Any, database: str) -> list[str]:
    """Apply the migrations not yet recorded in `database`; return the names applied now, in order."""
    if not DATABASE_NAME.match(database):
        raise MigrationError(f"database name {database!r} must be letters, digits and '_' (not starting with a digit)")
    migrations = load_migrations()
    client.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.execute(f"USE {database}")
    connection = getattr(client, "connection", None)
    if connection is not None and hasattr(connection, "database"):
        connection.database = database  # clickhouse-driver: a reconnect keeps the database too
    client.execute(SCHEMA_MIGRATIONS.create_sql())
    recorded = dict(client.execute("SELECT name, checksum FROM schema_migrations FINAL"))
    for migration in migrations:
        if migration.name in recorded and recorded[migration.name] != migration.checksum:
            raise MigrationError(
                f"migration {migration.name} was applied to {database} with a different text; migrations are "
                "append-only: restore the file and put the change in a new migration")
    known = {m.name for m in migrations}
    unknown = sorted(set(recorded) - known)
    if unknown:
        raise MigrationError(f"database {database} has migrations this version does not know: {', '.join(unknown)}; "
                             "run a version of o2o that includes them")
    applied = []
    for migration in migrations:
        if migration.name in recorded:
            continue
        for statement in migration.statements:
            client.execute(statement)
        client.execute(SCHEMA_MIGRATIONS.insert_sql(), SCHEMA_MIGRATIONS.rows(
            [{"name": migration.name, "checksum": migration.checksum, "applied_at_ms": int(time.time() * 1000)}]),
            columnar=True)
        applied.append(migration.name)
    return applied


def applied_migrations(client: Any) -> list[str]:
    """Names recorded in the client's current database, in order."""
    return sorted(name for (name,) in client.execute("SELECT name FROM schema_migrations FINAL"))
