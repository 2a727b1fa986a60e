#!/usr/bin/env bash
# The project's two front doors on a machine with nothing but Python 3.11:
#   ./dev.sh serve [tango-groups serve options]   start a SequenceManager (private Redis + Tango DB)
#   ./dev.sh test  [pytest options]               run the test suite
# Both create .venv on first use and install the project (with its test, bliss2, bliss2-writer and
# gui extras) into it. `test` also builds .venv-bliss1: blissdata 0.3.1, the Bliss 1.x reference
# the interop tests and benchmarks run in subprocesses (it cannot share an environment with
# blissdata 2.x).
set -euo pipefail
cd "$(dirname "$0")"
quiet=(--quiet --disable-pip-version-check)
venv=.venv
stamp=$venv/.installed
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
  echo "dev.sh: installing tango_groups with its test, bliss2, bliss2-writer and gui extras into $venv" \
       "(pytango, redis, numpy, pytest, blissdata 2, taurus, PyQt5...; a few minutes the first time)..." >&2
  "$venv/bin/python" -m pip install "${quiet[@]}" -e ".[test,bliss2,bliss2-writer,gui]"
  touch "$stamp"
  echo "dev.sh: $venv is ready" >&2
fi
bliss1=.venv-bliss1
bliss1_requirements=tests/bliss1-requirements.txt
bliss1_stamp=$bliss1/.installed
build_bliss1() {
  if [ ! -x "$bliss1/bin/python" ]; then
    python3 -m venv "$bliss1"
  fi
  if [ ! -f "$bliss1_stamp" ] || [ "$bliss1_requirements" -nt "$bliss1_stamp" ]; then
    echo "dev.sh: installing blissdata 0.3.1, the Bliss 1.x reference, into $bliss1..." >&2
    "$bliss1/bin/python" -m pip install "${quiet[@]}" "pip<24.1"
    "$bliss1/bin/python" -m pip install "${quiet[@]}" -r "$bliss1_requirements"
    touch "$bliss1_stamp"
  fi
  export TANGO_GROUPS_BLISS1_PYTHON="$PWD/$bliss1/bin/python"
}
command=${1:-}
shift || true
case "$command" in
  serve) exec "$venv/bin/tango-groups" serve "$@" ;;
  test) build_bliss1; exec "$venv/bin/python" -m pytest "$@" ;;
  *) echo "usage: ./dev.sh serve|test [options]" >&2; exit 2 ;;
esac
