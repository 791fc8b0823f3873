"""The raw limit: confluent-kafka consume + Avro decode of the ingress topics, no processing at all.

Whatever the pipeline does, it cannot go faster than reading and decoding its input on this box.

    python bench/baselines/raw_limit.py [--events 100000] [--layout single|batched|both] [--running]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.baselines.common import Meter, consumer_config, load, main  # noqa: E402

from pipeline.config import Settings  # noqa: E402
from pipeline.serde import EventCodec  # noqa: E402

NAME = "raw_limit"


def run(settings: Settings, events: list[dict[str, Any]], layout: str, timeout_s: float = 300.0) -> dict[str, Any]:
    import time

    from confluent_kafka import Consumer

    loaded = load(settings, events, layout)
    codec = EventCodec()
    consumer = Consumer(consumer_config(settings))
    consumer.subscribe(loaded.topics)
    meter = Meter(loaded.events)
    deadline = time.monotonic() + timeout_s
    try:
        while not meter.done:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{NAME}: counted {meter.count} of {loaded.events} events in {timeout_s:.0f} s")
            for message in consumer.consume(num_messages=10_000, timeout=0.2):
                if message.error() is not None:
                    raise RuntimeError(f"{NAME}: consumer error {message.error()}")
                meter.add(len(codec.decode(message.value())))
    finally:
        consumer.close()
    return meter.result(NAME, loaded)


if __name__ == "__main__":
    main(NAME, run)
