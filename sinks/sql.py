"""SQL literals rendered client-side (ClickHouse 18.16 has no server-side query parameters)."""

from __future__ import annotations

import math
from typing import Any


def quote_string(text: str) -> str:
    """A ClickHouse string literal: backslash and quote escaped, so any text stays one literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_literal(value: Any) -> str:
    """None, bool, int, float, str, list (array) or tuple as a ClickHouse literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value!r} as a ClickHouse literal")
        return repr(value)
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(sql_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "tuple(" + ", ".join(sql_literal(v) for v in value) + ")"
    raise TypeError(f"no ClickHouse literal for {type(value).__name__}: {value!r}")
