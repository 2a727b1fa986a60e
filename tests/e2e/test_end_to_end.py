"""End to end, as a beamline user meets the product: ``tango-groups serve`` (private Redis, embedded
sqlite Tango database), a client process running the seed's sequence through ``tango.DeviceProxy``
(``tango-groups demo --device``), blissdata 0.3.1 reading the result from Redis, and itango driving
one command."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bliss_envs import BLISS1_PYTHON
from processes import LineReader, clean_env, cli_command, cli_process, serve_values

INTEROP = Path(__file__).parents[1] / "interop"


@pytest.fixture(scope="module")
def serve_output() -> Iterator[list[str]]:
    """A running ``tango-groups serve``: what it printed up to READY."""
    with cli_process("serve", "--session", "e2e") as (process, reader):
        yield reader.until(lambda line: line == "READY")
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0, process.stderr.read()


@pytest.fixture(scope="module")
def served(serve_output) -> dict[str, str]:
    """The served device's TANGO_HOST, REDIS_URL and DEVICE lines."""
    return serve_values(serve_output)


def run(command: list[str], served: dict[str, str]) -> str:
    env = {**clean_env(), "TANGO_HOST": served["TANGO_HOST"]}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_seed_sequence_through_the_served_device_read_by_blissdata(served):
    out = run([*cli_command(), "demo", "--device", served["DEVICE"]], served)
    assert "demo: the sequence is right" in out
    assert "tango | ScanNumbers = [2, 3]" in out  # the Tango side saw the live update
    assert "tango | SequenceState = STARTING" in out and "tango | SequenceState = DONE" in out
    port = served["REDIS_URL"].rsplit(":", 1)[1]
    snapshot = json.loads(run([BLISS1_PYTHON, str(INTEROP / "bliss_reader.py"), port,
                               "snapshot", "e2e"], served))
    group = snapshot["groups"]["e2e:tmp:scans:1_sequence_of_scans"]
    master = "e2e:tmp:scans:1_sequence_of_scans:GroupingMaster"
    refs = group["channels"][f"{master}:scans"]["data"]
    assert [ref["node"] for ref in refs] == ["e2e:tmp:scans:2_loopscan",
                                             "e2e:tmp:scans:3_loopscan"]
    assert group["channels"][f"{master}:scan_numbers"]["data"] == [2, 3]
    assert group["channels"][f"{master}:custom_channels:sum"]["len"] == 5
    assert group["events"][-1] == ["END_SCAN", "e2e:tmp:scans:1_sequence_of_scans"]
    info = next(s["info"] for s in snapshot["scans"]
                if s["db_name"] == "e2e:tmp:scans:1_sequence_of_scans")
    assert info["state"] == "DONE"


@pytest.mark.slow
def test_itango_drives_a_command(served):
    itango = Path(sys.executable).with_name("itango3")
    device = served["DEVICE"]
    script = (f"d = Device('{device}'); print('STATE', d.State()); "
              "print('SEQ', d.Start('from itango')); print('END', d.End())")
    out = run([str(itango), "--no-banner", "-c", script], served)
    assert "STATE ON" in out
    assert "SEQ e2e:tmp:scans:" in out and "_from_itango" in out and "END DONE" in out


def plain_shell() -> dict[str, str]:
    """A user's shell: no venv on PATH, no TANGO_HOST."""
    venv_bin = Path(sys.executable).absolute().parent.resolve()
    path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep)
            if entry and Path(entry).resolve() != venv_bin]
    return {**clean_env(), "PATH": os.pathsep.join(path)}


@pytest.mark.slow
def test_serve_hints_run_from_a_plain_shell(serve_output, served, tmp_path):
    """Each parseable name appears on one line; each hint runs as printed, from another
    directory, without the venv on PATH or TANGO_HOST."""
    for name in ("TANGO_HOST", "REDIS_URL", "DEVICE"):
        assert [line for line in serve_output if f"{name}=" in line] == [
            f"{name}={served[name]}"]
    hints = {serve_output[i - 1]: shlex.split(line)
             for i, line in enumerate(serve_output) if line.startswith("    ")}
    itango = hints["Drive it from itango:"]
    done = subprocess.run(itango, input="print('STATE', d.State())\n",
                          capture_output=True, text=True, env=plain_shell(), cwd=tmp_path,
                          timeout=120, check=False)
    assert "STATE ON" in done.stdout, done.stdout + done.stderr
    write_scan = next(hint for title, hint in hints.items()
                      if title.startswith("Write a simulated scan"))
    done = subprocess.run(write_scan, capture_output=True, text=True,
                          env=plain_shell(), cwd=tmp_path, timeout=120, check=True)
    scan, number = done.stdout.split()
    with subprocess.Popen(hints["Follow its scans and sequences:"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=plain_shell(), cwd=tmp_path
                          ) as listen:
        try:
            lines = LineReader(listen).until(lambda line: line.startswith(f"END_SCAN {scan} "))
            listen.send_signal(signal.SIGINT)
            assert listen.wait(10) == 0
        finally:
            listen.kill()
    assert f"NEW_NODE {scan} {number}" in lines
