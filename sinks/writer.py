"""Writing to the warehouse: batched columnar inserts, and person merges kept as a closure.

The sink agent calls, per batch (thousands of rows per insert, never one row at a time):

    insert(client, "events", events)            # normalised events + person_id (+ ingested_at, late)
    insert(client, "sessions", session_updates)  # schemas/session_update.avsc records
    insert(client, "store_visits", visit_updates)
    insert(client, "triggers_log", trigger_log_records(out.triggers, out.suppressed, published_at))
    apply_person_merges(client, merges)          # schemas/person_merge.avsc records

Every insert is idempotent at read time (see sinks.tables), so a batch retried after a failure, or
replayed after a restart, changes no query result.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import orjson

from sinks.sql import sql_literal
from sinks.tables import insert_sql, rows_for


def insert(client: Any, table: str, records: Iterable[Mapping[str, Any]]) -> int:
    """Insert `records` into `table` in one columnar block; returns the number of rows."""
    records = list(records)
    if not records:
        return 0
    client.execute(insert_sql(table), rows_for(table, records), columnar=True)
    return len(records)


def event_rows(codec: Any, envelopes: Iterable[Mapping[str, Any]], ingested_at: int) -> list[dict[str, Any]]:
    """`events` records from resolved-event envelopes (schemas/resolved_events.avsc): the accepted
    record's events with their person and lateness; events without a person (duplicates the journey
    dropped) are left out."""
    rows: list[dict[str, Any]] = []
    for envelope in envelopes:
        events = codec.decode_accepted(envelope["events"])
        for event, person, late in zip(events, envelope["person_ids"], envelope["late"]):
            if person:
                event["person_id"], event["late"], event["ingested_at"] = person, late, ingested_at
                rows.append(event)
    return rows


@dataclass(frozen=True, slots=True)
class JsonRows:
    """Rows as JSONEachRow text for `sinks.http.ClickHouseHTTP`: JSON objects separated by commas."""

    body: bytes
    count: int

    def __len__(self) -> int:
        return self.count


# The `events` row of an event as JSON: the values of EVENTS' column getters (sinks/tables.py),
# which tests/unit/test_event_json_rows.py checks column by column. Per event type, the fields
# that are stored under a column of another name (and only for that type).
_TYPED_FIELDS = {"browse": (("category", "category"),), "wifi_checkin": (("kind", "checkin_kind"),),
                 "purchase": (("status", "status"),), "share": (("platform", "platform"),),
                 "complaint": (("category", "complaint_category"), ("severity", "severity"))}
_TYPED_COLUMNS = ("category", "checkin_kind", "status", "platform", "complaint_category", "severity")
_TEXT_COLUMNS = ("channel", "store_id", "checkin_kind", "status", "platform", "complaint_category", "severity")


def event_json_rows(codec: Any, envelopes: Iterable[Mapping[str, Any]], ingested_at: int) -> JsonRows:
    """`event_rows`, as JSONEachRow text for the `events` columns."""
    rows = [event_json_row(event, person, late, ingested_at)
            for envelope in envelopes
            for event, person, late in zip(codec.decode_accepted(envelope["events"]), envelope["person_ids"],
                                           envelope["late"])
            if person]
    # One call for the batch, its brackets cut off: ClickHouse reads rows separated by commas. One
    # call per row cost 8 us a row against 1.3 (each result kept takes fresh pages of memory).
    return JsonRows(orjson.dumps(rows)[1:-1], len(rows))


def event_json_row(event: dict[str, Any], person: str, late: bool, ingested_at: int) -> dict[str, Any]:
    """The decoded `event`, changed in place into its `events` row (fields no column reads stay;
    the insert skips them)."""
    if event.get("wifi_mac") or event.get("phone"):
        raise ValueError(f"events: event {event.get('event_id')!s} still carries a raw identifier; only "
                         "hashed identifiers may be stored (pipeline.privacy.hash_identifiers at the first hop)")
    row = event
    row["person_id"], row["is_late"], row["ingested_at_ms"] = person, 1 if late else 0, ingested_at
    row["occurred_at_ms"] = row.pop("occurred_at")
    consent = row.get("consent_marketing")
    if consent is not None:
        row["consent_marketing"] = 1 if consent else 0
    properties = row.pop("properties", None) or {}
    row["property_keys"] = keys = sorted(properties)
    row["property_values"] = [str(properties[k]) for k in keys]
    items = row.pop("items", None) or ()
    row["item_skus"] = [item["sku"] for item in items]
    row["item_quantities"] = [item["quantity"] for item in items]
    row["item_prices_cents"] = [item["price_cents"] for item in items]
    typed = {column: row.pop(field, None) for field, column in _TYPED_FIELDS.get(row["event_type"], ())}
    for column in _TYPED_COLUMNS:
        row[column] = typed.get(column)
    for column in _TEXT_COLUMNS:
        if row[column] is None:
            row[column] = ""
    return row


def trigger_log_records(triggers: Iterable[Any] = (), suppressed: Iterable[Any] = (),
                        published_at: int | None = None) -> list[dict[str, Any]]:
    """`triggers_log` records from the rule engine's output (pipeline.rules: Trigger, Suppressed)."""
    records = [{**t.to_record(published_at), "outcome": "fired", "reason": ""} for t in triggers]
    records += [{**s.trigger.to_record(None), "outcome": "suppressed", "reason": s.reason} for s in suppressed]
    return records


def apply_person_merges(client: Any, merges: Iterable[Mapping[str, Any]],
                        clock_ns: Any = time.time_ns) -> list[dict[str, Any]]:
    """Record merges in `identity_links` so every merged person points at its *final* person.

    Queries join through one hop (`person_map`), so the sink keeps the closure: for a merge A -> B
    it writes A -> resolve(B), and re-points every X that pointed at A. Worked example (anonymous
    MAC into a device, then the device into a member, in either order)::

        merges              links written                 person_map afterwards
        w:aa -> d:ip        w:aa -> d:ip                  w:aa -> d:ip
        d:ip -> m:42        d:ip -> m:42, w:aa -> m:42    w:aa -> m:42, d:ip -> m:42

        d:ip -> m:42        d:ip -> m:42                  d:ip -> m:42
        w:aa -> d:ip        w:aa -> m:42                  w:aa -> m:42, d:ip -> m:42

    Re-applying a merge writes the same mapping again (idempotent). Run it from one writer at a
    time (the journey stage is the single writer of merges): two writers applying dependent merges
    concurrently could each miss the other's link. Returns the rows written.
    """
    merges = [dict(m) for m in merges]
    if not merges:
        return []
    involved = {m["from_person"] for m in merges} | {m["to_person"] for m in merges}
    names = ", ".join(sql_literal(p) for p in sorted(involved))
    # A batch can name thousands of persons: the IN lists outgrow the default 256 KiB query limit.
    current: dict[str, str] = dict(client.execute(
        "SELECT person_id, merged_into FROM person_map "
        f"WHERE person_id IN ({names}) OR merged_into IN ({names})",
        settings={"max_query_size": 4 * len(names) + 65_536}))
    pointing_at: dict[str, dict[str, None]] = defaultdict(dict)  # target -> persons mapped to it, in order
    for person, target in current.items():
        pointing_at[target][person] = None
    rows: list[dict[str, Any]] = []
    version = clock_ns()

    def link(source: str, target: str, merge: Mapping[str, Any]) -> None:
        nonlocal version
        version += 1
        if source in current:
            pointing_at[current[source]].pop(source, None)
        current[source] = target
        pointing_at[target][source] = None
        rows.append({"from_person": source, "to_person": target, "at": merge["at"],
                     "event_id": merge.get("event_id") or "", "version": version})

    for merge in merges:
        source, target = merge["from_person"], merge["to_person"]
        seen = {source}
        while target in current and target not in seen:  # a chain written in this very batch
            seen.add(target)
            target = current[target]
        if target == source:
            continue
        link(source, target, merge)
        for other in list(pointing_at[source]):
            if other != source:
                link(other, target, merge)
    insert(client, "identity_links", rows)
    return rows
