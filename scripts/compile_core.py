"""Compile the core (journey and ingest path) with mypyc into build/core/ (pipeline/compiled.py).

    .venv/bin/python scripts/compile_core.py           # builds when the sources changed since the last build
    .venv/bin/python scripts/compile_core.py --force   # builds anyway

Takes about 25 s on 2 cores. Needs mypy (the `compiled` extra), setuptools and a C compiler.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.compiled import BUILD_DIR, CORE_MODULES, STAMP_NAME, build_state, source_digest  # noqa: E402


def compile_core() -> None:
    from mypyc.build import mypycify
    from setuptools import Distribution

    os.chdir(ROOT)  # mypyc names modules by their path: pipeline/sessions.py is pipeline.sessions
    shutil.rmtree(BUILD_DIR, ignore_errors=True)
    digest = source_digest()  # of the sources as compiled: an edit during the build makes it stale
    # Compiled modules import others that stay interpreted (serde, the registry client): mypy checks
    # how they are called, and a library without type information is taken as untyped.
    sources = [f"pipeline/{module}.py" for module in CORE_MODULES]
    extensions = mypycify(["--ignore-missing-imports", *sources], opt_level="3", group_name="pipeline.core",
                          target_dir=str(BUILD_DIR / "c"))
    dist = Distribution({"name": "o2o-pipeline-core", "ext_modules": extensions,
                         "script_args": ["--quiet", "build_ext", "--build-lib", str(BUILD_DIR),
                                         "--build-temp", str(BUILD_DIR / "obj"), "--parallel", str(os.cpu_count() or 1)]})
    dist.parse_command_line()
    dist.run_commands()
    shutil.rmtree(BUILD_DIR / "obj")
    (BUILD_DIR / STAMP_NAME).write_text(digest + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="build even when the build matches the sources")
    args = parser.parse_args()
    state = build_state()
    if state == "fresh" and not args.force:
        print(f"compiled core is up to date ({BUILD_DIR.relative_to(ROOT)})")
        return
    print(f"compiling the core with mypyc ({state}): {', '.join(CORE_MODULES)}", flush=True)
    began = time.monotonic()
    compile_core()
    print(f"compiled into {BUILD_DIR.relative_to(ROOT)} in {time.monotonic() - began:.0f}s")


if __name__ == "__main__":
    main()
