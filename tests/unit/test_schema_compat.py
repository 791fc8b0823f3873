"""Schema evolution: every current schema reads data written with every kept history version.

Rule for changing a schema: edit `schemas/<name>.avsc`, bump its `o2o_version`, and copy the new file
to `schemas/history/<name>.v<new>.avsc`. Released history files are never edited. New fields need a
default (so old data still reads); removed fields must have had one (so old readers still read new
data during a rolling deploy); enum symbols are only added, unless the enum has a default.
"""

from __future__ import annotations

import copy
import io
from typing import Any

import fastavro
import pytest
from fastavro.read import SchemaResolutionError
from fastavro.utils import generate_many

from pipeline.events import EVENT_TYPES, history_versions, load_schema, schema_version
from pipeline.serde import batch_schema

NAMES = (*EVENT_TYPES, "dead_letter")
PAIRS = [(name, version) for name in NAMES for version in history_versions(name)]


def read_with(writer: dict[str, Any], reader: dict[str, Any], count: int = 50) -> list[dict[str, Any]]:
    """Generate `count` records from `writer`, write them with it, read them back with `reader`."""
    parsed_writer, parsed_reader = fastavro.parse_schema(writer), fastavro.parse_schema(reader)
    records = []
    for datum in generate_many(parsed_writer, count):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed_writer, datum)
        buffer.seek(0)
        records.append(fastavro.schemaless_reader(buffer, parsed_writer, parsed_reader))
    return records


def field_map(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {field["name"]: field for field in schema["fields"]}


def enums(schema: Any, found: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    found = {} if found is None else found
    if isinstance(schema, dict):
        if schema.get("type") == "enum":
            found[schema["name"]] = schema
        for value in schema.values():
            enums(value, found)
    elif isinstance(schema, list):
        for item in schema:
            enums(item, found)
    return found


def missing_defaults(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Fields `new` adds without a default, i.e. fields it cannot fill when reading `old` data."""
    old_fields, new_fields = field_map(old), field_map(new)
    return [name for name in new_fields.keys() - old_fields.keys() if "default" not in new_fields[name]]


# --- the kept history ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_history_holds_every_released_version_up_to_the_current_one(name):
    assert history_versions(name) == list(range(1, schema_version(load_schema(name)) + 1))


@pytest.mark.parametrize("name", NAMES)
def test_current_schema_equals_its_history_copy(name):
    current = load_schema(name)
    assert load_schema(name, schema_version(current)) == current, (
        f"schemas/{name}.avsc changed without a version bump: bump o2o_version and add the history copy"
    )


# --- backward: the current schema reads old data ------------------------------------------------

@pytest.mark.parametrize("name, version", PAIRS)
def test_current_schema_reads_data_written_with_history_version(name, version):
    old, current = load_schema(name, version), load_schema(name)
    records = read_with(old, current)
    assert all(set(record) == set(field_map(current)) for record in records)


@pytest.mark.parametrize("name, version", [(n, v) for n, v in PAIRS if n in EVENT_TYPES])
def test_current_batch_schema_reads_batches_written_with_history_version(name, version):
    read_with(batch_schema(load_schema(name, version)), batch_schema(load_schema(name)), count=10)


@pytest.mark.parametrize("name, version", PAIRS)
def test_fields_added_since_a_history_version_have_defaults(name, version):
    assert missing_defaults(load_schema(name, version), load_schema(name)) == []


@pytest.mark.parametrize("name, version", PAIRS)
def test_enum_symbols_are_only_added_unless_the_enum_has_a_default(name, version):
    old_enums, current_enums = enums(load_schema(name, version)), enums(load_schema(name))
    for enum_name, old in old_enums.items():
        current = current_enums.get(enum_name)
        if current is not None and "default" not in current:
            assert set(old["symbols"]) <= set(current["symbols"]), f"{name}: {enum_name} lost symbols"


# --- forward: old readers (consumers not yet upgraded) read current data ------------------------

@pytest.mark.parametrize("name, version", PAIRS)
def test_history_version_reads_data_written_with_the_current_schema(name, version):
    read_with(load_schema(name), load_schema(name, version))


@pytest.mark.parametrize("name, version", PAIRS)
def test_fields_removed_since_a_history_version_had_defaults(name, version):
    assert missing_defaults(load_schema(name), load_schema(name, version)) == []


# --- the checks can fail ------------------------------------------------------------------------

def test_a_new_field_without_default_is_caught():
    old = load_schema("share")
    new = copy.deepcopy(old)
    new["fields"].append({"name": "reach", "type": "long"})
    assert missing_defaults(old, new) == ["reach"]
    with pytest.raises(SchemaResolutionError):
        read_with(old, new, count=1)


def test_a_changed_field_type_is_caught_by_resolution():
    old = load_schema("purchase")
    new = copy.deepcopy(old)
    for field in new["fields"]:
        if field["name"] == "order_id":
            field["type"] = "long"
    with pytest.raises(SchemaResolutionError):
        read_with(old, new, count=1)


def test_a_new_field_with_default_is_filled_when_reading_old_data():
    old = load_schema("share")
    new = copy.deepcopy(old)
    new["fields"].append({"name": "reach", "type": "long", "default": 0})
    assert {record["reach"] for record in read_with(old, new, count=5)} == {0}
