"""Avro on the wire, in Confluent framing, one event or a batch of events of one type per record.

A record value is `0x00 | schema id (4 bytes, big-endian) | Avro body` (Confluent wire format), so
Confluent tooling and any registry-aware consumer can read our topics. Two record shapes per type:

    o2o.Browse        one event
    o2o.BrowseBatch   {"events": [Browse, ...]}  (built here from browse.avsc, never a file)

`EventCodec.decode` returns a list of normalised events for both. Batches are how the pipeline
stays fast (DESIGN.md: a faust agent pays ~100 us per record), single records are for producers.

Schema ids come from a `RegistryClient`. The built-in `EmbeddedRegistry` serves the packaged
schemas with STABLE ids by a fixed rule (never renumber; tests pin it):

    id = 100 * TYPE_NUMBERS[name] + version          single record, e.g. browse v1   -> 101
    id = 100 * TYPE_NUMBERS[name] + 50 + version     batch record,  e.g. browse v1   -> 151

Subjects follow Confluent's RecordNameStrategy (the record's full name, e.g. 'o2o.WifiCheckinBatch')
because one topic carries both shapes. A Confluent-compatible HTTP registry (O2O_SCHEMA_REGISTRY_URL)
can implement `RegistryClient` later; ids are then the registry's.

`occurred_at` is `timestamp-millis` in the schemas but read and written as int epoch ms: the codec
works on copies of the schemas with that logicalType stripped (same bytes, no datetime objects).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import orjson
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from pipeline.events import (
    EVENT_TYPES,
    OUTPUT_SCHEMAS,
    RAW_IDENTIFIER_FIELDS,
    RECORD_NAMES,
    history_versions,
    load_schema,
    schema_version,
)
from pipeline.validation import MALFORMED

MAGIC_BYTE = 0
HEADER_SIZE = 5
TYPE_NUMBERS: dict[str, int] = {
    "browse": 1,
    "wifi_checkin": 2,
    "purchase": 3,
    "share": 4,
    "complaint": 5,
    "dead_letter": 9,
    "session_update": 10,
    "visit_update": 11,
    "person_merge": 12,
    "trigger": 13,
    "trigger_decision": 14,
    "resolved_events": 15,
}
BATCH_ID_OFFSET = 50
BATCH_SUFFIX = "Batch"
_MAX_VERSION = BATCH_ID_OFFSET - 1


class DecodeError(Exception):
    """A record value that cannot be decoded. `reason` is a validation reason code ('malformed')."""

    def __init__(self, detail: str, reason: str = MALFORMED) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    schema_id: int
    subject: str
    version: int
    schema: dict[str, Any]


class RegistryClient(Protocol):
    """What the codec needs from a schema registry (the subset of Confluent's REST API it uses)."""

    def by_id(self, schema_id: int) -> RegisteredSchema:
        """GET /schemas/ids/{id}. Raises KeyError for an id the registry does not know."""
        ...

    def latest(self, subject: str) -> RegisteredSchema:
        """GET /subjects/{subject}/versions/latest. Raises KeyError for an unknown subject."""
        ...


def schema_id_for(name: str, version: int, batch: bool = False) -> int:
    """The embedded registry's id of `name` (e.g. 'browse') at `version`; see the module docstring."""
    if not 1 <= version <= _MAX_VERSION:
        raise ValueError(f"schema version must be 1..{_MAX_VERSION} for embedded ids, got {version} for {name}")
    return 100 * TYPE_NUMBERS[name] + (BATCH_ID_OFFSET if batch else 0) + version


def subject_of(schema: dict[str, Any]) -> str:
    return f"{schema['namespace']}.{schema['name']}"


def batch_schema(event_schema: dict[str, Any]) -> dict[str, Any]:
    """The `<Name>Batch` record: {"events": array of the event record}, same namespace and version."""
    return {
        "type": "record",
        "name": event_schema["name"] + BATCH_SUFFIX,
        "namespace": event_schema["namespace"],
        "o2o_version": event_schema["o2o_version"],
        "doc": f"Several {event_schema['name']} events in one Kafka record.",
        "fields": [{"name": "events", "type": {"type": "array", "items": event_schema}}],
    }


DEAD_LETTER_SUBJECT = subject_of(load_schema("dead_letter"))
OUTPUT_SUBJECTS: dict[str, str] = {subject_of(load_schema(name)): name for name in OUTPUT_SCHEMAS}
_SUBJECT_OF_OUTPUT = {name: subject for subject, name in OUTPUT_SUBJECTS.items()}


class EmbeddedRegistry:
    """The packaged schemas (current and `history/`), each event schema also as a batch record."""

    def __init__(self) -> None:
        self._by_id: dict[int, RegisteredSchema] = {}
        self._latest: dict[str, RegisteredSchema] = {}
        for name in (*EVENT_TYPES, *OUTPUT_SCHEMAS):
            self._add_name(name)

    def by_id(self, schema_id: int) -> RegisteredSchema:
        return self._by_id[schema_id]

    def latest(self, subject: str) -> RegisteredSchema:
        return self._latest[subject]

    def all(self) -> list[RegisteredSchema]:
        return [self._by_id[schema_id] for schema_id in sorted(self._by_id)]

    def _add_name(self, name: str) -> None:
        current = load_schema(name)
        versions = {version: load_schema(name, version) for version in history_versions(name)}
        versions.setdefault(schema_version(current), current)
        if versions[schema_version(current)] != current:
            raise ValueError(
                f"schemas/{name}.avsc declares version {schema_version(current)} but differs from "
                f"schemas/history/{name}.v{schema_version(current)}.avsc; bump o2o_version when changing a schema"
            )
        for version, schema in sorted(versions.items()):
            is_latest = version == schema_version(current)
            self._register(name, version, schema, batch=False, latest=is_latest)
            if name != "dead_letter":
                self._register(name, version, batch_schema(schema), batch=True, latest=is_latest)

    def _register(self, name: str, version: int, schema: dict[str, Any], batch: bool, latest: bool) -> None:
        registered = RegisteredSchema(schema_id_for(name, version, batch), subject_of(schema), version, schema)
        self._by_id[registered.schema_id] = registered
        if latest:
            self._latest[registered.subject] = registered


def registry_from_settings(settings: Any) -> RegistryClient:
    """Confluent's registry when `schema_registry_url` is set (pipeline/registry.py), else the packaged one."""
    if not settings.schema_registry_url:  # an empty O2O_SCHEMA_REGISTRY_URL means unset
        return EmbeddedRegistry()
    from pipeline.registry import ConfluentRegistry  # imports an HTTP stack only when it is used

    auth = settings.schema_registry_auth.get_secret_value() if settings.schema_registry_auth else None
    return ConfluentRegistry(settings.schema_registry_url, auth=auth)


def frame(schema_id: int, body: bytes) -> bytes:
    return bytes((MAGIC_BYTE,)) + schema_id.to_bytes(4, "big") + body


def unframe(data: bytes) -> tuple[int, memoryview]:
    """(schema id, Avro body) of a Confluent-framed value; DecodeError when the frame is wrong."""
    if len(data) < HEADER_SIZE:
        raise DecodeError(f"record value is {len(data)} bytes, shorter than the 5-byte Confluent header")
    if data[0] != MAGIC_BYTE:
        raise DecodeError(
            f"record value starts with byte {data[0]}, not the Confluent magic byte 0; "
            "produce Avro in Confluent framing (or canonical JSON to the JSON ingress)"
        )
    return int.from_bytes(data[1:HEADER_SIZE], "big"), memoryview(data)[HEADER_SIZE:]


def strip_timestamp_logical_types(schema: Any) -> Any:
    """A copy of `schema` where `{"type": "long", "logicalType": "timestamp-millis"}` is plain "long"."""
    if isinstance(schema, list):
        return [strip_timestamp_logical_types(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("logicalType") == "timestamp-millis":
        return schema["type"]
    return {key: strip_timestamp_logical_types(value) for key, value in schema.items()}


@dataclass(frozen=True, slots=True)
class _Reader:
    event_type: str | None  # None for outputs (dead letters, session updates, ...)
    output: str | None      # the output schema's name, for outputs
    batch: bool
    writer: Any  # parsed, logical types stripped
    reader: Any  # parsed current schema when the writer's version differs, else None


@dataclass(frozen=True, slots=True)
class _Writer:
    schema_id: int
    schema: Any  # parsed, logical types stripped


class EventCodec:
    """Encode and decode events (and dead letters) in Confluent framing, caching parsed schemas."""

    def __init__(self, registry: RegistryClient | None = None) -> None:
        self._registry = registry if registry is not None else EmbeddedRegistry()
        self._readers: dict[int, _Reader] = {}
        self._writers: dict[str, _Writer] = {}
        self._subjects = {event_type: subject for subject, event_type in RECORD_NAMES.items()}

    # --- encode --------------------------------------------------------------------------------

    def encode(self, event: dict[str, Any], allow_raw_identifiers: bool = False) -> bytes:
        """One event as one record value.

        Raw wifi_mac/phone are refused unless `allow_raw_identifiers` (only test producers that play
        a foreign, non-hashing producer set it): past the first hop they must be hashed.
        """
        if not allow_raw_identifiers:
            _refuse_raw_identifiers(event)
        writer = self._writer(self._subjects[_event_type_of(event)])
        return self._write(writer, event, event)

    def encode_batch(self, events: Sequence[dict[str, Any]], allow_raw_identifiers: bool = False) -> bytes:
        """Several events of ONE type as one record value (`<Type>Batch`)."""
        if not events:
            raise ValueError("encode_batch needs at least one event")
        event_type = _event_type_of(events[0])
        for event in events:
            if event.get("event_type") != event_type:
                raise ValueError(
                    f"encode_batch needs events of one type; got {event_type!r} and {event.get('event_type')!r} "
                    "(group events by event_type first)"
                )
            if not allow_raw_identifiers:
                _refuse_raw_identifiers(event)
        writer = self._writer(self._subjects[event_type] + BATCH_SUFFIX)
        return self._write(writer, {"events": events}, events[0])

    def encode_accepted(self, events: Sequence[dict[str, Any]]) -> bytes:
        """Validated, hashed events of any types as one `o2o.accepted` record value: a JSON array.

        The accepted format is internal to the pipeline's own stages (ingest writes it; the journey
        and the sink read it, the sink inside `o2o.resolved`), and each accepted event is decoded
        twice on its way to ClickHouse. JSON (orjson) costs 0.9 us to encode and 2.4 us to decode
        per event where Avro costs 9.3 and 7.9 (bench/serde_bench.py), at 3x the bytes.
        """
        for event in events:
            _refuse_raw_identifiers(event)
        return orjson.dumps(events)

    def decode_accepted(self, data: bytes) -> list[dict[str, Any]]:
        """The events of an `o2o.accepted` record value (also Avro batches, as workers before the
        JSON format wrote them). Raises only DecodeError."""
        if data[:1] == bytes((MAGIC_BYTE,)):
            return self.decode(data)
        try:
            events = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"accepted record is neither Avro nor JSON: {exc}") from None
        if not isinstance(events, list) or not all(isinstance(e, dict) and "event_type" in e for e in events):
            raise DecodeError("accepted record is not a JSON array of events")
        return events

    def encode_dead_letter(self, record: dict[str, Any]) -> bytes:
        """A dead letter (fields of schemas/dead_letter.avsc, received_at as epoch ms)."""
        return self._write(self._writer(DEAD_LETTER_SUBJECT), record, record)

    def encode_outputs(self, name: str, records: Sequence[dict[str, Any]]) -> bytes:
        """Output records of one schema (e.g. 'session_update') as one batch record value."""
        if name not in OUTPUT_SCHEMAS or name == "dead_letter":
            raise ValueError(f"no batch output schema {name!r}; expected one of {OUTPUT_SCHEMAS[1:]}")
        writer = self._writer(_SUBJECT_OF_OUTPUT[name] + BATCH_SUFFIX)
        return self._write(writer, {"events": records}, {"event_type": name})

    def encode_output(self, name: str, record: dict[str, Any]) -> bytes:
        """One output record (e.g. a 'trigger': `Trigger.to_record()`, payload in tuple notation)."""
        if name not in OUTPUT_SCHEMAS:
            raise ValueError(f"no output schema {name!r}; expected one of {OUTPUT_SCHEMAS}")
        writer = self._writer(_SUBJECT_OF_OUTPUT[name])
        return self._write(writer, record, {"event_type": name}, tuple_notation=name == "trigger")

    def _write(self, writer: _Writer, datum: dict[str, Any], example: dict[str, Any],
               tuple_notation: bool = False) -> bytes:
        out = io.BytesIO()
        out.write(frame(writer.schema_id, b""))
        try:
            # Only a trigger's payload union needs tuple notation (record name, datum); detecting it
            # costs ~1.5x on every union, so it is off for everything else.
            schemaless_writer(out, writer.schema, datum, disable_tuple_notation=not tuple_notation)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            raise ValueError(
                f"cannot encode {example.get('event_type', 'record')} {example.get('event_id')!r} with schema "
                f"id {writer.schema_id}: {exc}; validate events with pipeline.validation before encoding"
            ) from None
        return out.getvalue()

    def _writer(self, subject: str) -> _Writer:
        writer = self._writers.get(subject)
        if writer is None:
            registered = self._registry.latest(subject)
            writer = _Writer(registered.schema_id, parse_schema(strip_timestamp_logical_types(registered.schema)))
            self._writers[subject] = writer
        return writer

    # --- decode --------------------------------------------------------------------------------

    def decode(self, data: bytes) -> list[dict[str, Any]]:
        """The events in one record value (one, or all of a batch). Raises only DecodeError."""
        schema_id, _ = unframe(data)
        reader = self._readers.get(schema_id) or self._reader(schema_id)
        if reader.event_type is None:
            raise DecodeError(f"schema id {schema_id} is not an event schema; read it with decode_dead_letter")
        datum = self._read(reader, data, schema_id)
        events = datum["events"] if reader.batch else [datum]
        event_type = reader.event_type
        for event in events:
            event["event_type"] = event_type
            # Raw identifiers are in the schema for foreign producers only; absent means absent.
            if event.get("wifi_mac") is None:
                event.pop("wifi_mac", None)
            if event.get("phone") is None:
                event.pop("phone", None)
        return events

    def decode_outputs(self, data: bytes) -> tuple[str, list[dict[str, Any]]]:
        """(output schema name, records) of a batch record written by `encode_outputs`."""
        schema_id, _ = unframe(data)
        reader = self._readers.get(schema_id) or self._reader(schema_id)
        if reader.output is None or not reader.batch:
            raise DecodeError(f"schema id {schema_id} is not a batch of pipeline outputs")
        return reader.output, self._read(reader, data, schema_id)["events"]

    def decode_output(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """(output schema name, record) of a single record written by `encode_output`."""
        schema_id, _ = unframe(data)
        reader = self._readers.get(schema_id) or self._reader(schema_id)
        if reader.output is None or reader.batch:
            raise DecodeError(f"schema id {schema_id} is not a single pipeline output record")
        return reader.output, self._read(reader, data, schema_id)

    def decode_dead_letter(self, data: bytes) -> dict[str, Any]:
        schema_id, _ = unframe(data)
        reader = self._readers.get(schema_id) or self._reader(schema_id)
        if reader.event_type is not None:
            raise DecodeError(f"schema id {schema_id} is an event schema, not a dead letter")
        return self._read(reader, data, schema_id)

    def _read(self, reader: _Reader, data: bytes, schema_id: int) -> dict[str, Any]:
        stream = io.BytesIO(data)
        stream.seek(HEADER_SIZE)
        try:
            datum: Any = schemaless_reader(stream, reader.writer, reader.reader)  # a record: a dict
        except Exception as exc:  # fastavro raises many types on corrupt input; all mean one thing here
            raise DecodeError(
                f"Avro body does not match schema id {schema_id} ({type(exc).__name__}); "
                "the record is corrupt or was written with a different schema under this id"
            ) from None
        if stream.tell() != len(data):
            raise DecodeError(
                f"{len(data) - stream.tell()} bytes left after the Avro body of schema id {schema_id}; "
                "the record is corrupt or was written with a different schema under this id"
            )
        return datum

    def _reader(self, schema_id: int) -> _Reader:
        try:
            registered = self._registry.by_id(schema_id)
        except KeyError:
            raise DecodeError(
                f"unknown schema id {schema_id}; the producer used a schema this registry does not hold"
            ) from None
        subject = registered.subject
        batch = subject.endswith(BATCH_SUFFIX)
        record_subject = subject[: -len(BATCH_SUFFIX)] if batch else subject
        event_type = RECORD_NAMES.get(record_subject)
        output = OUTPUT_SUBJECTS.get(record_subject)
        if event_type is None and output is None:
            raise DecodeError(f"schema id {schema_id} is {subject!r}, not a record this pipeline reads")
        current = self._registry.latest(subject)
        writer = parse_schema(strip_timestamp_logical_types(registered.schema))
        reader = None
        if current.schema_id != registered.schema_id:
            reader = parse_schema(strip_timestamp_logical_types(current.schema))
        cached = _Reader(event_type, output, batch, writer, reader)
        self._readers[schema_id] = cached
        return cached


def _event_type_of(event: dict[str, Any]) -> str:
    event_type = event.get("event_type")
    if event_type not in TYPE_NUMBERS or event_type == "dead_letter":
        raise ValueError(f"cannot encode an event with event_type {event_type!r}; expected one of {EVENT_TYPES}")
    return event_type


def _refuse_raw_identifiers(event: dict[str, Any]) -> None:
    for raw in RAW_IDENTIFIER_FIELDS:
        if event.get(raw) is not None:
            raise ValueError(
                f"event {event.get('event_id')!r} still carries a raw '{raw}'; hash it first "
                "(privacy.IdentifierHasher.hash_identifiers) — raw identifiers never leave the first hop"
            )

