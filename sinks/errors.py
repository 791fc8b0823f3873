"""What a user should do when the warehouse fails: one explanation for every CLI that queries it."""

from __future__ import annotations

from typing import Any

NO_SCHEMA = {60, 81}  # UNKNOWN_TABLE, UNKNOWN_DATABASE
BAD_LOGIN = {192, 193, 516}  # UNKNOWN_USER, WRONG_PASSWORD, AUTHENTICATION_FAILED


def explain(exc: BaseException, settings: Any, doing: str) -> str | None:
    """A message naming the server and what to do, for a clickhouse-driver error (or a refused
    connection) raised while `doing` (e.g. "a KPI query"); None for other exceptions."""
    from clickhouse_driver.errors import Error as ClickHouseError
    from clickhouse_driver.errors import ServerException

    where = f"ClickHouse at {settings.clickhouse_host}:{settings.clickhouse_port}"
    if isinstance(exc, ServerException):
        first = exc.message.splitlines()[0] if exc.message else str(exc)
        if exc.code in NO_SCHEMA:
            return (f"{where} has no warehouse schema in database {settings.clickhouse_database!r} ({first}); "
                    "run `o2o init` to create it, or check the clickhouse_database setting")
        if exc.code in BAD_LOGIN:
            return (f"{where} refused user {settings.clickhouse_user!r}: {first}; check the clickhouse_user "
                    "and clickhouse_password settings")
        return f"{where} rejected {doing}: {first}"
    if isinstance(exc, (ClickHouseError, OSError, EOFError)):
        return (f"cannot reach {where} ({exc}); start the local stack with `o2o stack up`, or check the "
                "clickhouse_host and clickhouse_port settings")
    return None
