"""The compiled journey core and its interpreted sources give the same dry run, record for record."""

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline.compiled import INTERPRETED_ENV, package_path_entry

O2O = str(Path(sys.executable).parent / "o2o")
NOW = "2026-11-24T00:00:00+08:00"
START = "2026-11-20T08:00:00+08:00"  # the simulated days end before NOW, whatever today's date


def o2o(*args, interpreted: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("O2O_")}
    env["O2O_HASH_SECRET"] = "e2e-compiled-core"
    env["O2O_ALLOWED_LATENESS_MS"] = "120000"  # 2 min: some late gateway uploads come later than that
    if interpreted:
        env[INTERPRETED_ENV] = "1"
    return subprocess.run([O2O, *args], env=env, capture_output=True, text=True, timeout=300)


def test_compiled_and_interpreted_dry_runs_are_identical(tmp_path):
    assert package_path_entry() is not None, "no compiled core to compare: make compile"
    events = tmp_path / "day.jsonl"
    made = o2o("simulate", "--out", str(events), "--events", "30000", "--rate", "0", "--seed", "11",
               "--start", START, "--bad-rate", "0.01", "--late-rate", "0.1", interpreted=False)
    assert made.returncode == 0, made.stderr

    compiled, interpreted = (o2o("dry-run", "--events", str(events), "--now", NOW, "--json", interpreted=flag)
                             for flag in (False, True))

    assert compiled.returncode == interpreted.returncode == 0, compiled.stderr + interpreted.stderr
    compiled_doc, interpreted_doc = json.loads(compiled.stdout), json.loads(interpreted.stdout)
    assert compiled_doc["summary"]["valid"] > 25_000 and compiled_doc["sessions"] and compiled_doc["visits"]
    assert compiled_doc["summary"]["late"] > 0  # late uploads: the lateness path ran too
    for part in interpreted_doc:
        assert compiled_doc[part] == interpreted_doc[part], part
