"""Typed rule parameters: each rule type declares its `PARAMS`; `config.py` checks a YAML file against them.

A `Param` names its kind, default and bounds, so a wrong value is refused at start with the key,
the value and what is accepted, e.g. ``params.window_days: must be a number > 0, got -1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KINDS = ("int", "number", "str", "str_list")


@dataclass(frozen=True, slots=True)
class Param:
    """kind: int | number | str | str_list. minimum: smallest accepted value (exclusive when
    `above` is set, e.g. a window must be > 0). nullable: `null` is accepted and switches it off."""

    kind: str
    default: Any
    doc: str
    minimum: float | None = None
    above: bool = False
    nullable: bool = False
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Param kind must be one of {KINDS}, got {self.kind!r}")

    def check(self, value: Any) -> Any:
        """The value to use; raises ValueError with what is accepted (the caller adds the key)."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError(f"must be {self.accepted()}, got null")
        if self.kind in ("int", "number"):
            ok_type = type(value) is int or (self.kind == "number" and type(value) is float)
            if not ok_type or (self.minimum is not None and
                               (value <= self.minimum if self.above else value < self.minimum)):
                raise ValueError(f"must be {self.accepted()}, got {value!r}")
            return value
        if self.kind == "str":
            if type(value) is not str or not value or (self.choices and value not in self.choices):
                raise ValueError(f"must be {self.accepted()}, got {value!r}")
            return value
        if type(value) is not list or not all(type(v) is str and v for v in value):
            raise ValueError(f"must be {self.accepted()}, got {value!r}")
        bad = [v for v in value if self.choices and v not in self.choices]
        if bad:
            raise ValueError(f"must be {self.accepted()}, got {bad[0]!r} in the list")
        return list(dict.fromkeys(value))

    def accepted(self) -> str:
        if self.kind in ("int", "number"):
            text = "an integer" if self.kind == "int" else "a number"
            if self.minimum is not None:
                bound = self.minimum if self.kind == "number" else int(self.minimum)
                text += f" {'>' if self.above else '>='} {bound}"
        elif self.kind == "str":
            text = f"one of {', '.join(self.choices)}" if self.choices else "a non-empty string"
        else:
            text = "a list of " + (f"values from {', '.join(self.choices)}" if self.choices else "non-empty strings")
        return text + (" or null" if self.nullable else "")


def hours_ms(hours: float) -> int:
    return round(hours * 3_600_000)


def days_ms(days: float) -> int:
    return round(days * 86_400_000)


def minutes_ms(minutes: float) -> int:
    return round(minutes * 60_000)


def require_row_fields(rule: str, row: dict[str, Any], fields: tuple[str, ...]) -> None:
    """An aggregate rule's result row must carry `fields`; the message says what the query must return."""
    missing = [name for name in fields if name not in row]
    if missing:
        raise ValueError(f"rule {rule!r}: result row lacks {', '.join(missing)}; its query must return "
                         f"{', '.join(fields)}")
