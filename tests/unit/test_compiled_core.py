"""The compiled journey core (pipeline/compiled.py): loaded only while it matches the sources."""

import shutil

import pytest

import pipeline.journey
from pipeline import compiled
from pipeline.compiled import CORE_MODULES, STAMP_NAME, build_state, package_path_entry, source_digest


@pytest.fixture
def sources(tmp_path):
    source_dir = tmp_path / "pipeline"
    source_dir.mkdir()
    for module in CORE_MODULES:
        shutil.copy(compiled.SOURCE_DIR / f"{module}.py", source_dir / f"{module}.py")
    return source_dir


def stamp(build_dir, digest):
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / STAMP_NAME).write_text(digest + "\n")


def test_a_build_is_used_only_while_it_matches_the_sources(sources, tmp_path, monkeypatch):
    monkeypatch.delenv(compiled.INTERPRETED_ENV, raising=False)
    build_dir = tmp_path / "build"
    assert build_state(sources, build_dir) == "missing"
    assert package_path_entry(sources, build_dir) is None

    stamp(build_dir, source_digest(sources))
    assert build_state(sources, build_dir) == "fresh"
    assert package_path_entry(sources, build_dir) == str(build_dir / "pipeline")

    with open(sources / "sessions.py", "a") as edited:
        edited.write("\n# edited after the build\n")
    assert build_state(sources, build_dir) == "stale"
    assert package_path_entry(sources, build_dir) is None


def test_the_digest_covers_every_core_module_and_the_python_version(sources, monkeypatch):
    before = source_digest(sources)
    for module in CORE_MODULES:
        path = sources / f"{module}.py"
        text = path.read_text()
        path.write_text(text + " ")
        assert source_digest(sources) != before, module
        path.write_text(text)
    assert source_digest(sources) == before
    monkeypatch.setattr(compiled.sys, "version", "3.99.0 (elsewhere)")
    assert source_digest(sources) != before


@pytest.mark.parametrize("value, used", [("1", False), ("yes", False), ("0", True), ("", True)])
def test_o2o_interpreted_turns_a_fresh_build_off(sources, tmp_path, monkeypatch, value, used):
    build_dir = tmp_path / "build"
    stamp(build_dir, source_digest(sources))
    monkeypatch.setenv(compiled.INTERPRETED_ENV, value)
    assert (package_path_entry(sources, build_dir) is not None) is used


def test_this_process_runs_the_compiled_core_when_the_build_is_fresh(monkeypatch):
    """`make test` compiles first (scripts/bootstrap.sh), so the suite tests what users run."""
    if package_path_entry() is None:
        pytest.fail(f"the journey core runs {compiled.core_status()}; compile it: make compile")
    for module in CORE_MODULES:
        loaded = __import__(f"pipeline.{module}", fromlist=["_"])
        assert not loaded.__file__.endswith(".py"), f"pipeline.{module} was loaded from {loaded.__file__}"
    assert compiled.core_status() == "compiled (mypyc)"
    assert pipeline.journey.__file__.startswith(str(compiled.BUILD_DIR))
