"""The core, compiled: the same sources as native code, built by mypyc into build/core/.

The core is what every event goes through: reading and checking it (events, validation, privacy,
dedup, ingest) and the journey (identity, sessions, visits, journey, deadlines).

`scripts/compile_core.py` (run by `make bootstrap`, so by `make demo` and `make test`) compiles
`CORE_MODULES` with mypyc and records the SHA-256 of their sources. On import, `pipeline` puts
the build first on its package path only while that record matches the sources and this Python,
so an edited module runs as edited (interpreted) until it is compiled again; nothing stale is ever
loaded. `O2O_INTERPRETED=1` runs the sources interpreted regardless, e.g. to debug or profile them.

The sources stay plain Python and behave the same either way (tests/e2e/test_compiled_core_cli.py
compares the two on a simulated day, bad lines included). Compiled, `bench/core_bench.py` runs
1.2-1.5x as fast and `bench/dry_run_bench.py`'s parse and validation step about 1.3x.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

CORE_MODULES = ("deadlines", "identity", "sessions", "visits", "journey",
                "events", "validation", "privacy", "dedup", "ingest")
SOURCE_DIR = Path(__file__).resolve().parent
BUILD_DIR = SOURCE_DIR.parent / "build" / "core"
STAMP_NAME = "sources.sha256"
INTERPRETED_ENV = "O2O_INTERPRETED"


def source_digest(source_dir: Path = SOURCE_DIR) -> str:
    """SHA-256 of this Python's version and the core modules' sources: what a build is valid for."""
    digest = hashlib.sha256(sys.version.encode())
    for module in CORE_MODULES:
        digest.update(module.encode() + b"\0" + (source_dir / f"{module}.py").read_bytes())
    return digest.hexdigest()


def build_state(source_dir: Path = SOURCE_DIR, build_dir: Path = BUILD_DIR) -> str:
    """"fresh", "missing" (never built) or "stale" (built from other sources or another Python)."""
    stamp = build_dir / STAMP_NAME
    if not stamp.is_file():
        return "missing"
    return "fresh" if stamp.read_text().strip() == source_digest(source_dir) else "stale"


def interpreted_requested() -> bool:
    return os.environ.get(INTERPRETED_ENV, "") not in ("", "0")


def package_path_entry(source_dir: Path = SOURCE_DIR, build_dir: Path = BUILD_DIR) -> str | None:
    """The directory to search before the sources for `pipeline.<module>`, or None to run them."""
    if interpreted_requested():
        return None
    if build_state(source_dir, build_dir) != "fresh":
        return None
    return str(build_dir / "pipeline")


def core_is_compiled() -> bool:
    import pipeline.journey

    return not pipeline.journey.__file__.endswith(".py")


def core_status() -> str:
    """How the core runs in this process, in words for logs and bench reports."""
    if core_is_compiled():
        return "compiled (mypyc)"
    if interpreted_requested():
        return f"interpreted ({INTERPRETED_ENV} is set)"
    state = build_state()
    hint = "run `make compile`" if state != "fresh" else "restart the process"
    return f"interpreted (compiled build {state}: {hint})"
