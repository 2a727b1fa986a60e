#!/usr/bin/env bash
# The project's two front doors on a machine with nothing but Python 3.11:
#   ./dev.sh serve [tango-groups serve options]   start a SequenceManager (private Redis + Tango DB)
#   ./dev.sh test  [pytest options]               run the test suite
# Both create .venv on first use. `serve` installs the product alone (what `pip install
# tango_groups` gives); `test` adds its test, bliss2, gui and docs extras, and builds the
# environments of the test-only consumers that cannot share .venv: .venv-bliss1 (blissdata 0.3.1,
# the Bliss 1.x reference of the interop tests and benchmarks: it cannot share an environment with
# blissdata 2.x) and .venv-blisswriter (blisswriter 3, Bliss 2's HDF5 writer, which
# tests/bliss2/test_blisswriter.py runs as a process: it brings blissdata-lima2 and lima2-client,
# which the product never needs).
set -euo pipefail
cd "$(dirname "$0")"
quiet=(--quiet --disable-pip-version-check)
venv=.venv
product_stamp=$venv/.installed-product
test_stamp=$venv/.installed-test
fresh() {  # the stamp $1 exists and is newer than setup.cfg
  [ -f "$1" ] && [ ! setup.cfg -nt "$1" ]
}
install_project() {  # $1: a stamp, $2: the pip requirement of the checkout
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  echo "dev.sh: installing $2 into $venv (a few minutes the first time)..." >&2
  "$venv/bin/python" -m pip install "${quiet[@]}" -e "$2"
  touch "$1"
  echo "dev.sh: $venv is ready" >&2
}
build_venv() {  # $1: a venv, $2: its requirements file, $3: the pip it needs
  if [ ! -x "$1/bin/python" ]; then
    python3 -m venv "$1"
  fi
  if [ ! -f "$1/.installed" ] || [ "$2" -nt "$1/.installed" ]; then
    echo "dev.sh: installing $2 into $1..." >&2
    "$1/bin/python" -m pip install "${quiet[@]}" "$3"
    "$1/bin/python" -m pip install "${quiet[@]}" -r "$2"
    touch "$1/.installed"
  fi
}
command=${1:-}
shift || true
case "$command" in
  serve)
    fresh "$product_stamp" || fresh "$test_stamp" || install_project "$product_stamp" .
    exec "$venv/bin/tango-groups" serve "$@" ;;
  test)
    fresh "$test_stamp" || install_project "$test_stamp" ".[test,bliss2,gui,docs]"
    # blissdata 0.3.1's sdist has a pyproject.toml that pip >= 24.1 refuses
    build_venv .venv-bliss1 tests/bliss1-requirements.txt "pip<24.1"
    build_venv .venv-blisswriter tests/blisswriter-requirements.txt pip
    export TANGO_GROUPS_BLISS1_PYTHON="$PWD/.venv-bliss1/bin/python"
    export TANGO_GROUPS_BLISSWRITER="$PWD/.venv-blisswriter/bin/blisswriter"
    exec "$venv/bin/python" -m pytest "$@" ;;
  *) echo "usage: ./dev.sh serve|test [options]" >&2; exit 2 ;;
esac
