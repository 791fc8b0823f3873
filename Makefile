.PHONY: bootstrap compile demo test stack-smoke clean

bootstrap:
	@scripts/bootstrap.sh

# The core (journey and ingest path) as native code (bootstrap does it too; again after editing its sources).
compile:
	.venv/bin/python scripts/compile_core.py

# The main job: the whole loop on the local stack.
demo: bootstrap
	.venv/bin/o2o demo

# The whole test suite: unit, integration (real broker and ClickHouse started by the suite), e2e.
test: bootstrap
	.venv/bin/python -m pytest -q

stack-smoke: bootstrap
	.venv/bin/o2o stack up && .venv/bin/o2o stack status && .venv/bin/o2o stack down

clean:
	-.venv/bin/o2o stack down
	rm -rf .o2o .pytest_cache .hypothesis build
