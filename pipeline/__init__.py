"""o2o-pipeline's domain core: pure, deterministic, no Kafka or ClickHouse I/O.

The I/O edges that live in this package are the `o2o` CLI (`cli.py`, `stack.py`, `demo.py`), the producer SDK
(`producer.py`) that integrators import, and the schema registry client (`registry.py`); everything
else here is testable without services.

The journey core (`compiled.CORE_MODULES`) runs compiled when a build matching its sources exists
(`pipeline/compiled.py`): that build is searched first for the modules of this package.
"""

from pipeline.compiled import package_path_entry as _compiled_entry

if (_entry := _compiled_entry()) is not None:
    __path__.insert(0, _entry)
