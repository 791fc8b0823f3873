"""`o2o dry-run`: the whole pure core over a finite list of canonical-JSON lines, no Kafka or ClickHouse.

This is how users test their configuration on history before going live. Each line goes through
exactly what the agents run, in file order as arrival order:

    line -> validate + hash identifiers + deduplicate (IngestStage)   -> dlq / duplicates / accepted
    accepted -> identity, sessions, visits (JourneyProcessor)          -> persons, sessions, visits, late
    (person, event) pairs + the journey batch -> RuleEngine            -> triggers, suppressed

and at the end of input everything still open is closed (`JourneyProcessor.close_all`), and every
pending timer fires at its due time (`RuleEngine.finish`: share invites, firings held over quiet
hours), as if the stream had gone on quietly. The aggregate rules (ClickHouse) do not run. The
result (`DryRunReport.to_dict()`) is the JSON document `o2o dry-run --json` prints:

    {"summary": {"read", "valid", "duplicates", "dlq", "late"},
     "dlq": [{"line", "event_id", "reason", "detail"}],
     "persons": [...], "sessions": [...], "visits": [...], "triggers": [...], "suppressed": [...]}

Triggers have the fields of the trigger topics (`Trigger.to_dict`: ISO times), suppressed firings
the rule, person, reason and cause (`Suppressed.to_dict`); both sorted by (fired_at, trigger_id).

Counting: `read` is the number of non-blank lines (blank lines are skipped but keep their place in
the line numbering); read = valid + duplicates + dlq. `late` counts valid events older than the
allowed lateness when they arrived: they still link identities (and their persons are listed) but
are in no session or visit, as in the live pipeline.

Outputs are the *final* versions: the version of a session or visit that the processor closed (a
closed version never changes; at the end of input `close_all` closes the rest), so one absorbed
into another (a bridging late event, a re-cut visit) never appears. A person merge
(an anonymous device identified as a member) re-homes open sessions and visits in the processor;
ones already closed keep their content and are re-pointed to the surviving person here, exactly as
the sinks re-point stored rows. Only surviving persons are listed. Sorting is deterministic:
persons by id, sessions by (start, session_id), visits by (start, person, store, end), dead letters
by line.

Pure: no file or network I/O; the CLI reads the file and hands lines over in batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, Iterable, Iterator

from pipeline.events import format_occurred_at
from pipeline.ingest import IngestResult, IngestStage
from pipeline.journey import JourneyBatch, JourneyProcessor
from pipeline.privacy import IdentifierHasher
from pipeline.rules import RuleEngine, RuleOutput
from pipeline.serde import EventCodec
from pipeline.sessions import Session
from pipeline.validation import REASON_CODES
from pipeline.visits import Visit

BATCH_LINES = 5_000
SUMMARY_KEYS = ("read", "valid", "duplicates", "dlq", "late")
# Where a dry run's time goes, step by step (`DryRunReport.seconds`, the text view's last line):
# reading the lines (JSON, validation, hashing, dedup), the core (identity, sessions, visits: the
# JourneyProcessor, parsing excluded, closing at the end included), the trigger rules, the report.
STEPS = ("reading", "core", "rules", "report")
DOCUMENT_KEYS = ("summary", "dlq", "persons", "sessions", "visits", "triggers", "suppressed")


@dataclass(slots=True)
class DryRunReport:
    """Everything a dry run found. `to_dict()` is the public JSON document; the rest feeds the text view."""

    summary: dict[str, int]
    dlq: list[dict[str, Any]]
    persons: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    visits: list[dict[str, Any]]
    triggers: list[dict[str, Any]] = field(default_factory=list)
    suppressed: list[dict[str, Any]] = field(default_factory=list)
    # Not in the document: context for the readable summary.
    now_ms: int | None = None
    merges: int = 0
    conflicts: int = 0
    ambiguous_events: int = 0
    first_event_ms: int | None = None
    last_event_ms: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # where the run's time went (STEPS)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": dict(self.summary), "dlq": self.dlq, "persons": self.persons,
                "sessions": self.sessions, "visits": self.visits, "triggers": self.triggers,
                "suppressed": self.suppressed}


class DryRun:
    """Feed numbered lines in batches (`feed`), then `finish()` once for the report."""

    def __init__(self, ingest: IngestStage, journey: JourneyProcessor, now_ms: int,
                 rules: RuleEngine | None = None) -> None:
        self.ingest_stage = ingest
        self.journey = journey
        self.rules = rules if rules is not None else RuleEngine(journey=journey.policy)
        self.fired = RuleOutput()
        self.now_ms = now_ms
        self.counts = dict.fromkeys(SUMMARY_KEYS, 0)
        self.dead_letters: list[dict[str, Any]] = []
        self._sessions: dict[str, Session] = {}   # session_id -> its closed (final) version
        self._visits: dict[str, Visit] = {}       # visit_id -> its closed (final) version
        self._merged_into: dict[str, str] = {}    # absorbed person -> the person it merged into
        self._conflicts = 0
        self._first_ms: int | None = None
        self._finished = False
        self.seconds = dict.fromkeys(STEPS, 0.0)

    @classmethod
    def from_settings(cls, settings: Any, now_ms: int) -> DryRun:
        """The stages as the agents build them from `settings` (one partition: one deduplicator).

        Raises ConfigError for settings that cannot run (bad journey policy, prod without hash_secret)."""
        hasher = IdentifierHasher(settings.effective_hash_secret)
        stage = IngestStage(EventCodec(), hasher, settings.validation_policy(), settings.new_deduplicator())
        policy = settings.journey_policy()
        return cls(stage, JourneyProcessor(policy), now_ms, RuleEngine(settings.rules(), policy))

    # --- feeding -----------------------------------------------------------------------------------

    def feed(self, numbered_lines: Iterable[tuple[int, str | bytes]]) -> None:
        """One batch of (line number, line): ingest, then identity / sessions / visits."""
        self.process(self.ingest(numbered_lines))

    def ingest(self, numbered_lines: Iterable[tuple[int, str | bytes]]) -> list[dict[str, Any]]:
        """Validate, hash and deduplicate a batch; dead letters and counts are kept. Returns accepted events."""
        began = time.perf_counter()
        result = IngestResult()
        ingest_line, now_ms = self.ingest_stage.ingest_json_line, self.now_ms
        read = 0
        for line_no, line in numbered_lines:
            if not line.strip():
                continue
            read += 1
            ingest_line(line, now_ms, result, line_no)
        counts = self.counts
        counts["read"] += read
        counts["valid"] += len(result.accepted)
        counts["duplicates"] += len(result.duplicates)
        counts["dlq"] += len(result.dead_letters)
        self.dead_letters.extend(
            {"line": dead.source_offset, "event_id": dead.event_id, "reason": dead.reason, "detail": dead.detail}
            for dead in result.dead_letters)
        self.seconds["reading"] += time.perf_counter() - began
        return result.accepted

    def process(self, events: list[dict[str, Any]]) -> None:
        """Accepted events of one batch, in arrival order, through the journey processor."""
        if self._finished:
            raise RuntimeError("this dry run is finished; start a new DryRun")
        if events and self._first_ms is None:
            self._first_ms = min(event["occurred_at"] for event in events)
        elif events:
            first = min(event["occurred_at"] for event in events)
            if first < self._first_ms:
                self._first_ms = first
        began = time.perf_counter()
        batch = self.journey.process(events)
        self.seconds["core"] += time.perf_counter() - began
        self._collect(batch)

    def _collect(self, batch: JourneyBatch) -> None:
        began = time.perf_counter()
        self.fired.extend(self.rules.on_batch(batch.resolved, batch))
        self._keep(batch)
        self.seconds["rules"] += time.perf_counter() - began

    def _keep(self, batch: JourneyBatch) -> None:
        """Keep what the batch closed: a closed version is final, and at the end `close_all` closes the
        rest. Updated versions are not needed (each open session or visit is either closed later, with
        its final content, or absorbed into another and never closed), so absorbed ids need no removal."""
        self.counts["late"] += len(batch.late)
        sessions, visits = self._sessions, self._visits
        for session in batch.sessions_closed:
            sessions[session.session_id] = session
        for visit in batch.visits_closed:
            visits[visit.visit_id] = visit
        for merge in batch.merges:
            self._merged_into[merge.from_person] = merge.to_person
        self._conflicts += len(batch.conflicts)

    # --- the end -------------------------------------------------------------------------------------

    def finish(self) -> DryRunReport:
        """End of input: close everything still open and build the report (once)."""
        if self._finished:
            raise RuntimeError("finish() was already called")
        began = time.perf_counter()
        batch = self.journey.close_all()
        self.seconds["core"] += time.perf_counter() - began
        self._collect(batch)
        began = time.perf_counter()
        self.fired.extend(self.rules.finish())
        self.seconds["rules"] += time.perf_counter() - began
        self._finished = True
        began = time.perf_counter()
        survivor = self._survivor
        visit_policy = self.journey.policy.visits

        session_dicts = []
        for session in sorted(self._sessions.values(), key=lambda s: (s.start, s.session_id)):
            out = session.to_dict()
            out["person_id"] = survivor(out["person_id"])
            session_dicts.append(out)
        visit_dicts = []
        for visit in self._visits.values():
            out = visit.to_dict(visit_policy)
            out["person_id"] = survivor(out["person_id"])
            visit_dicts.append((visit.start, out["person_id"], visit.store_id, visit.end, visit.visit_id, out))
        visit_dicts.sort(key=lambda row: row[:5])

        identity = self.journey.identity
        persons = [self.journey.person_dict(person_id) for person_id in sorted(identity.persons())]
        triggers = sorted(self.fired.triggers, key=lambda t: (t.fired_at, t.trigger_id))
        suppressed = sorted(self.fired.suppressed, key=lambda s: (s.trigger.fired_at, s.trigger.trigger_id))
        return DryRunReport(
            summary=dict(self.counts), dlq=sorted(self.dead_letters, key=lambda d: d["line"] or 0),
            persons=persons, sessions=session_dicts, visits=[row[-1] for row in visit_dicts],
            triggers=[t.to_dict() for t in triggers], suppressed=[s.to_dict() for s in suppressed],
            now_ms=self.now_ms, merges=self.journey.stats["merges"], conflicts=self._conflicts,
            ambiguous_events=identity.ambiguous_events, first_event_ms=self._first_ms,
            last_event_ms=self.journey.watermark_ms,
            seconds={**self.seconds, "report": time.perf_counter() - began},
        )

    def _survivor(self, person_id: str) -> str:
        """The person `person_id` ended up in after every merge (merges chain: d -> w -> m)."""
        merged_into = self._merged_into
        seen = 0
        while person_id in merged_into and seen <= len(merged_into):
            person_id = merged_into[person_id]
            seen += 1
        return person_id


def numbered_batches(lines: Iterable[str | bytes], batch_lines: int = BATCH_LINES,
                     first_line: int = 1) -> Iterator[list[tuple[int, str | bytes]]]:
    """(line number, line) lists of up to `batch_lines`; line numbers count blank lines too."""
    numbered = enumerate(lines, start=first_line)
    while batch := list(islice(numbered, batch_lines)):
        yield batch


def run_lines(lines: Iterable[str | bytes], dry_run: DryRun, batch_lines: int = BATCH_LINES,
              on_batch: Callable[[list[tuple[int, str | bytes]]], None] | None = None) -> DryRunReport:
    """Feed every line in batches, then finish. `on_batch` sees each batch after it is processed."""
    for batch in numbered_batches(lines, batch_lines):
        dry_run.feed(batch)
        if on_batch is not None:
            on_batch(batch)
    return dry_run.finish()


# --- the readable view ------------------------------------------------------------------------------


def _short(person_id: str, width: int = 22) -> str:
    """Person ids of hashed identifiers are 66 characters: the text view shows their start."""
    return person_id if len(person_id) <= width else person_id[:width - 1] + "…"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def format_report(report: DryRunReport, source: str = "input", show: int = 10) -> str:
    """The text `o2o dry-run` prints without --json: counts first, then the first `show` of each list."""
    s = report.summary
    lines = [f"dry run of {source}"
             + (f" (future timestamps judged against {format_occurred_at(report.now_ms)})"
                if report.now_ms is not None else "")]
    if report.first_event_ms is not None and report.last_event_ms is not None:
        lines.append(f"event time {format_occurred_at(report.first_event_ms)} .. "
                     f"{format_occurred_at(report.last_event_ms)}")
    lines.append(f"read {_plural(s['read'], 'line')}: {s['valid']:,} valid, "
                 f"{_plural(s['duplicates'], 'duplicate')}, {_plural(s['dlq'], 'dead letter')}")
    if s["late"]:
        lines.append(f"  {_plural(s['late'], 'valid event')} arrived later than the allowed lateness: "
                     "kept and counted, but in no session or visit")
    if report.dlq:
        by_reason = {reason: 0 for reason in REASON_CODES}
        for dead in report.dlq:
            by_reason[dead["reason"]] = by_reason.get(dead["reason"], 0) + 1
        lines.append("dead letters by reason: "
                     + ", ".join(f"{reason} {n:,}" for reason, n in by_reason.items() if n))
        for dead in report.dlq[:show]:
            lines.append(f"  line {dead['line']:<6} {dead['reason']:16} {dead['event_id'] or '-':20} {dead['detail']}")
        if len(report.dlq) > show:
            lines.append(f"  ... and {len(report.dlq) - show:,} more (--json lists them all)")

    members = sum(1 for p in report.persons if p["member_ids"])
    lines.append(f"persons: {len(report.persons):,} ({_plural(members, 'member')}, {len(report.persons) - members:,} anonymous); "
                 f"{_plural(report.merges, 'identity merge')}, {_plural(report.conflicts, 'conflict')}"
                 + (f", {_plural(report.ambiguous_events, 'event')} on shared identifiers"
                    if report.ambiguous_events else ""))

    o2o = sum(1 for x in report.sessions if x["online_to_offline"])
    revenue = sum(x["revenue_cents"] for x in report.sessions)
    lines.append(f"sessions: {len(report.sessions):,} ({o2o:,} online-to-offline), paid revenue {revenue:,} cents")
    for x in report.sessions[:show]:
        counts = " ".join(f"{kind} {n}" for kind, n in sorted(x["counts"].items()))
        stores = f" stores {','.join(x['stores'])}" if x["stores"] else ""
        lines.append(f"  {x['start']} .. {x['end'][11:]}  {_short(x['person_id']):22} {counts}{stores}"
                     + (f" revenue {x['revenue_cents']}" if x["revenue_cents"] else "")
                     + ("  online->offline" if x["online_to_offline"] else ""))
    if len(report.sessions) > show:
        lines.append(f"  ... and {len(report.sessions) - show:,} more (--json lists them all)")

    visitors = sum(1 for v in report.visits if v["class"] == "visitor")
    passersby = len(report.visits) - visitors
    capture = f", capture rate {100 * visitors / len(report.visits):.1f}%" if report.visits else ""
    stores = len({v["store_id"] for v in report.visits})
    lines.append(f"visits: {len(report.visits):,} at {_plural(stores, 'store')}: "
                 f"{_plural(visitors, 'visitor')}, {_plural(passersby, 'passerby', 'passersby')}{capture}")
    for v in report.visits[:show]:
        lines.append(f"  {v['start']} .. {v['end'][11:]}  {_short(v['person_id']):22} {v['store_id']:14} "
                     f"dwell {v['dwell_s']:>5}s  {v['class']}")
    if len(report.visits) > show:
        lines.append(f"  ... and {len(report.visits) - show:,} more (--json lists them all)")

    lines.append(f"triggers: {len(report.triggers):,} fired, {len(report.suppressed):,} suppressed")
    by_rule: dict[str, list[int]] = {}
    for t in report.triggers:
        by_rule.setdefault(t["rule"], [0, 0])[0] += 1
    for x in report.suppressed:
        by_rule.setdefault(x["rule"], [0, 0])[1] += 1
    for rule, (fired, held_back) in sorted(by_rule.items()):
        lines.append(f"  {rule:22} {fired:>6,} fired {held_back:>6,} suppressed")
    for t in report.triggers[:show]:
        lines.append(f"  {t['fired_at']}  {t['rule']:22} {_short(t['person_id'] or '-'):22} store {t['store_id'] or '-'}")
    if len(report.triggers) > show:
        lines.append(f"  ... and {len(report.triggers) - show:,} more (--json lists them all)")
    if report.seconds:
        lines.append(format_speed(report))
    return "\n".join(lines)


def format_speed(report: DryRunReport) -> str:
    """Where the time went: reading the lines, the core (parsing excluded), the rules, the report."""
    took = report.seconds
    read, valid = report.summary["read"], report.summary["valid"]

    def per_second(n: int, seconds: float) -> str:
        return f"{n / seconds:,.0f}/s" if seconds > 0 else "-"

    return (f"time: reading {took['reading']:.2f}s ({per_second(read, took['reading'])} lines), "
            f"core {took['core']:.2f}s ({per_second(valid, took['core'])} events: identity, sessions, "
            f"visits), rules {took['rules']:.2f}s, report {took['report']:.2f}s")
