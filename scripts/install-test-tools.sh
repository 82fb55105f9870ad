#!/usr/bin/env bash
# Install the tools the test suite uses, and print the Python interpreter that has them.
#
#   scripts/install-test-tools.sh          # prints e.g. ~/.cache/lintel-tools/prometheus-client-0.26.0/bin/python
#
# prometheus_client (PyPI) provides the reference OpenMetrics text parser the metrics test
# checks /metrics with. Installed once into a private venv under
# ${LINTEL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lintel-tools}; needs python3 with venv, and
# PyPI on the first run only. Idempotent and safe to run concurrently. Diagnostics go to stderr;
# stdout carries only the interpreter path.
set -euo pipefail

# Pin: bump on purpose.
PROM_VERSION=0.26.0

tools_dir=${LINTEL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lintel-tools}
venv="$tools_dir/prometheus-client-$PROM_VERSION"
py="$venv/bin/python"

install_tools() {
  mkdir -p "$tools_dir"
  # Serialise concurrent first runs (flock is in util-linux; skip the lock if it is missing).
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$tools_dir/.lock"
    flock 9
  fi
  [[ -f "$venv/.installed" && -x "$py" ]] && return 0
  if ! command -v python3 >/dev/null 2>&1; then
    echo "error: python3 is not installed (on Debian: apt-get install python3 python3-venv)" >&2
    exit 3
  fi
  echo "installing prometheus-client==$PROM_VERSION into $venv" >&2
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >&2; then
    echo "error: 'python3 -m venv' failed (on Debian: apt-get install python3-venv)" >&2
    exit 2
  fi
  "$py" -m pip install --quiet --disable-pip-version-check --no-input \
    "prometheus-client==$PROM_VERSION" >&2
  touch "$venv/.installed"
}

[[ -f "$venv/.installed" && -x "$py" ]] || install_tools
echo "$py"
