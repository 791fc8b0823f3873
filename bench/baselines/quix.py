"""The Quix Streams baseline: a session-window count per person, as a user of `quixstreams` writes it.

    sdf.session_window(inactivity_gap_ms=30 min, grace_ms=1 day).count().current()

over the five ingress topics (one StreamingDataFrame each, `concat`-ed), Avro decoded by a custom
Deserializer, event time from `occurred_at`. Layouts:

    single    records are keyed by person already, so the window runs on the message key
    batched   a record holds many persons' events: `apply(expand=True)` splits it, `set_timestamp`
              takes each event's time and `group_by(person)` repartitions through an internal topic
              (Quix's documented way to re-key; it costs a produce and a consume per event)

Every event that reaches the window is counted once, through `.current()`'s update or, for an event
behind the grace period, its `on_late` callback (reported as `late_dropped`). State and changelog
topics are Quix's defaults (RocksDB under a temporary state_dir). Runs in this process and stops the
Application when the last event is counted.

    python bench/baselines/quix.py [--events 100000] [--layout single|batched|both] [--running]
"""

from __future__ import annotations

import sys
import tempfile
import threading
import uuid
from functools import reduce
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.baselines.common import SESSION_GAP_MS, Meter, load, main, person_of  # noqa: E402

from pipeline.config import Settings  # noqa: E402

NAME = "quix"
GRACE_MS = 86_400_000


def run(settings: Settings, events: list[dict[str, Any]], layout: str, timeout_s: float = 600.0) -> dict[str, Any]:
    import logging
    import warnings

    # quixstreams imports confluent-kafka's schema registry client, whose authlib warns about its
    # own httpx module on import (forcing it shown): noise in the bench's output, kept out of it.
    with warnings.catch_warnings(record=True):
        from quixstreams import Application
    from quixstreams.models.serializers import Deserializer

    from pipeline.serde import EventCodec

    class AvroEvents(Deserializer):
        """Confluent-framed Avro in; one event (single layout) or the list of a batch record out."""

        def __init__(self, batched: bool) -> None:
            super().__init__()
            self.codec = EventCodec()
            self.batched = batched

        def __call__(self, value: bytes, ctx: Any) -> Any:
            decoded = self.codec.decode(value)
            return decoded if self.batched else decoded[0]

    loaded = load(settings, events, layout)
    batched = layout == "batched"
    app = Application(
        broker_address=settings.kafka_bootstrap_servers, consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", state_dir=tempfile.mkdtemp(prefix="quix-state-"), loglevel=logging.WARNING,
        consumer_extra_config={"session.timeout.ms": 6000},
    )
    meter = Meter(loaded.events)
    late = {"dropped": 0}

    def counted(_value: Any) -> None:
        meter.add()
        if meter.done:
            app.stop()

    def on_late(*_args: Any) -> bool:
        late["dropped"] += 1
        counted(None)
        return False  # counted here; no warning per event

    extractor = None if batched else (lambda value, _headers, _ts, _type: value["occurred_at"])
    frames = [app.dataframe(app.topic(name, key_deserializer="str", value_deserializer=AvroEvents(batched),
                                      timestamp_extractor=extractor))
              for name in loaded.topics]
    sdf = reduce(lambda left, right: left.concat(right), frames)
    if batched:
        sdf = sdf.apply(lambda batch: batch, expand=True)
        sdf = sdf.set_timestamp(lambda value, _key, _ts, _headers: value["occurred_at"])
        sdf = sdf.group_by(person_of, name="person")
    sdf = sdf.session_window(inactivity_gap_ms=SESSION_GAP_MS, grace_ms=GRACE_MS, on_late=on_late).count().current()
    sdf.update(counted)

    timer = threading.Timer(timeout_s, app.stop)
    timer.start()
    try:
        app.run()
    finally:
        timer.cancel()
    if not meter.done:
        raise TimeoutError(f"{NAME}: counted {meter.count} of {loaded.events} events in {timeout_s:.0f} s")
    return meter.result(NAME, loaded, late_dropped=late["dropped"])


if __name__ == "__main__":
    main(NAME, run)
