#!/usr/bin/env bash
# The project's two front doors on a machine with nothing but Python 3.11:
#   ./dev.sh serve [tango-groups serve options]   start a SequenceManager (private Redis + Tango DB)
#   ./dev.sh test  [pytest options]               run the test suite
# Both create .venv on first use and install the project (with its test extras) into it.
set -euo pipefail
cd "$(dirname "$0")"
venv=.venv
stamp=$venv/.installed
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
  echo "dev.sh: installing tango_groups and its test extras into $venv" \
       "(pytango, redis, numpy, pytest, blissdata...; about a minute the first time)..." >&2
  # blissdata 0.3.1 (interop tests) ships a pyproject.toml that pip >= 24.1 refuses to parse
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "pip<24.1"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"
  touch "$stamp"
  echo "dev.sh: $venv is ready" >&2
fi
command=${1:-}
shift || true
case "$command" in
  serve) exec "$venv/bin/tango-groups" serve "$@" ;;
  test) exec "$venv/bin/python" -m pytest "$@" ;;
  *) echo "usage: ./dev.sh serve|test [options]" >&2; exit 2 ;;
esac
