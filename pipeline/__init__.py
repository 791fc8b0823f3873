"""o2o-pipeline's domain core: pure, deterministic, no Kafka or ClickHouse I/O.

The I/O edges that live in this package are the `o2o` CLI (`cli.py`, `stack.py`, `demo.py`), the producer SDK
(`producer.py`) that integrators import, and the schema registry client (`registry.py`); everything
else here is testable without services.
"""
