"""The examples of README.rst and of the documentation (``docs/*.rst``) run as written.

Every ``.. code-block:: python`` (or fenced python) block of those documents is found and run
against the test Redis, its ``redis://...`` URLs replaced by the test's and ``$REDIS_URL`` set to
it:

* blocks of the README sections in ``WALK_THROUGHS`` are one itango session driving a device: they
  run in order, in one namespace where ``Device`` is itango's (a ``DeviceProxy``), against a real
  device server registered in a private Tango database, and the console commands between them
  (``tango-groups loopscan``...) are run too, as the text says; a command the test does not know
  fails it, so the walk-through cannot drift from what is tested;
* every other block runs on its own, in a fresh namespace; ``EXPECTED_OUTPUT`` holds what some of
  them must print;
* ``SKIPPED`` lists the blocks that cannot run here, each with its reason (keep it short);
* every command of every console block (``$ ...``), every ``tango-groups ...`` literal of the text
  and every option the "Command line" section (``docs/device.rst``) names under a subcommand is
  checked to exist: a
  ``tango-groups`` command line parses, a ``./dev.sh`` command is one dev.sh knows, any other
  command is installed next to this Python and has the options it is given (its ``--help``),
  a ``python -c`` program compiles.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import tango

from tango_groups import session as session_module
from tango_groups.bliss1 import node
from tango_groups.cli import build_parser, main
from tango_groups.runtime.device_server import DeviceServer
from tango_groups.runtime.fixtures import load_config, sequence_manager_config
from tango_groups.runtime.tango_db import TangoDatabaseServer

ROOT = Path(__file__).parents[2]
README = ROOT / "README.rst"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.rst"))]
DEV_SH = ROOT / "dev.sh"
BIN = Path(sys.executable).absolute().parent  # where the venv's commands are

WALK_THROUGHS = {"Five-minute walk-through"}
SKIPPED: dict[str, str] = {}  # first line of a block -> why it cannot run in the tests
EXPECTED_OUTPUT = {  # section -> lines its standalone python block prints
    "The Python library": ["demo:tmp:scans:1_sequence_of_scans 1",
                           "demo:tmp:scans:5_group_of_scans 5"],
}

_DIRECTIVE = re.compile(r"^(\s*)\.\. code-block::\s*(\S+)\s*$")
_OPTION = re.compile(r"^\s+:[\w-]+:")
_FENCE = re.compile(r"^(\s*)```\s*(\w*)\s*$")
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1+\s*$")
_REDIS_URL = re.compile(r"redis://[^\s\"']+")


@dataclasses.dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # of the directive or fence, from 1
    section: str  # the title of the section it is in
    document: str = "README.rst"  # its path in the checkout

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"

    @property
    def first_line(self) -> str:
        return self.code.strip().splitlines()[0]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def code_blocks(text: str) -> list[Block]:
    """The code blocks of reStructuredText ``text`` (and fenced ones), with their sections."""
    lines = text.splitlines()
    found: list[Block] = []
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if (line.strip() and not line[0].isspace() and _UNDERLINE.match(following)
                and len(following.strip()) >= len(line.strip())):
            section = line.strip()
        if directive := _DIRECTIVE.match(line):
            j = i + 1
            while j < len(lines) and _OPTION.match(lines[j]):
                j += 1
            body = []
            while j < len(lines) and (not lines[j].strip()
                                      or _indent(lines[j]) > len(directive.group(1))):
                body.append(lines[j])
                j += 1
            code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
            found.append(Block(directive.group(2), code, i + 1, section))
            i = j
            continue
        if fence := _FENCE.match(line):
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            code = textwrap.dedent("\n".join(lines[i + 1:j])).strip("\n") + "\n"
            found.append(Block(fence.group(2), code, i + 1, section))
            i = j + 1
            continue
        i += 1
    return found


BLOCKS = [dataclasses.replace(block, document=str(path.relative_to(ROOT)))
          for path in DOCUMENTS for block in code_blocks(path.read_text())]
PYTHON = [block for block in BLOCKS if block.language == "python"]
STANDALONE = [block for block in PYTHON
              if block.section not in WALK_THROUGHS and block.first_line not in SKIPPED]
BLISS2 = 'data_format="bliss2"'  # blocks that run against a Redis with RedisJSON and RediSearch


@pytest.fixture
def clean_session_state() -> Iterator[None]:
    """A block's ``Session(...).setup()`` is undone afterwards (current session, reader default)."""
    yield
    current = session_module._current
    if current is not None:
        current.close()
    node.set_default_connection(None)


def test_every_python_block_is_found_and_run_or_skipped_with_a_reason():
    for path in DOCUMENTS:
        text = path.read_text()
        found = [block for block in PYTHON if block.document == str(path.relative_to(ROOT))]
        assert len(found) == text.count(".. code-block:: python") + text.count("```python"), path
    assert {block.section for block in PYTHON} >= {"The Python library", *WALK_THROUGHS}
    assert set(SKIPPED) <= {block.first_line for block in PYTHON}, "a SKIPPED block is gone"
    assert set(EXPECTED_OUTPUT) <= {block.section for block in STANDALONE}
    assert any(BLISS2 in block.code for block in STANDALONE)


@pytest.fixture
def modules_redis_url(modules_redis) -> str:
    """The Redis of the Bliss 2 blocks (tests/conftest.py)."""
    return modules_redis.url


@pytest.mark.parametrize("block", STANDALONE, ids=[block.where for block in STANDALONE])
def test_standalone_python_block_runs(block, request, clean_session_state, capsys, monkeypatch):
    url = request.getfixturevalue("modules_redis_url" if BLISS2 in block.code else "redis_url")
    if BLISS2 not in block.code:
        request.getfixturevalue("redis_client")  # flushed
    monkeypatch.setenv("REDIS_URL", url)  # what the text says to export
    code = _REDIS_URL.sub(url, block.code)
    exec(compile(code, block.where, "exec"), {"__name__": "readme"})  # noqa: S102
    printed = capsys.readouterr().out.splitlines()
    assert printed == EXPECTED_OUTPUT.get(block.section, printed)


# -- the device walk-through ----------------------------------------------------------------------
class WalkThrough:
    """Runs a walk-through's blocks against a served device: its console commands and its itango
    session (one namespace)."""

    def __init__(self, tango_host: str, redis_url: str) -> None:
        self.redis_url = redis_url
        self.variables = {"REDIS_URL": redis_url, "TANGO_HOST": tango_host}
        self.namespace = {"Device": lambda name: tango.DeviceProxy(f"tango://{tango_host}/{name}")}

    def run(self, block: Block) -> None:
        if block.language == "console":
            for line in block.code.splitlines():
                if line.startswith("$ "):
                    self.command(shlex.split(line[2:], comments=True))
        elif block.language == "python":
            code = compile(block.code, block.where, "exec")
            exec(code, self.namespace)  # noqa: S102
        else:
            raise AssertionError(f"{block.where}: a {block.language} block")

    def command(self, words: list[str]) -> None:
        words = [re.sub(r"\$(\w+)", lambda match: self.variables[match.group(1)], word)
                 for word in words]
        if words == ["./dev.sh", "serve"] or words == [".venv/bin/itango3"]:
            return  # the test's device stands for the first, the namespace for the second
        if words[0] == "export":
            return  # the test's values are in self.variables already
        if words[0] == ".venv/bin/tango-groups" and words[1] == "loopscan":
            assert main(words[1:]) == 0, words
            return
        raise AssertionError(f"the README walk-through runs {words}: teach the test how to")


@pytest.fixture
def served_device(redis_url: str, redis_client) -> Iterator[str]:
    """Device tango_groups/sequence_manager/1 on the test Redis, as ``./dev.sh serve`` runs it
    (flushed Redis: scan numbers start at 1); yields the private TANGO_HOST."""
    with TangoDatabaseServer() as database:
        load_config(sequence_manager_config("1", 1, {"RedisURL": redis_url}), database.tango_host)
        with DeviceServer("1", database.tango_host):
            yield database.tango_host


@pytest.mark.slow
@pytest.mark.parametrize("section", sorted(WALK_THROUGHS))
def test_walk_through_runs_against_a_device(section, served_device, redis_url, capsys):
    walk = WalkThrough(served_device, redis_url)
    for block in BLOCKS:
        if block.section == section and block.document == "README.rst":
            walk.run(block)
    device = walk.namespace["d"]
    assert list(device.ScanNumbers) == [1, 3]
    assert [name.rsplit(":", 1)[1] for name in device.ScanNames] == ["1_loopscan", "3_loopscan"]
    assert list(device.sum) == [1.5, 2.5]
    assert device.SequenceState.name == "DONE"
    printed = capsys.readouterr().out.split()
    assert printed == [f"tango_groups:tmp:scans:{n}_loopscan" if i % 2 == 0 else str(n)
                       for n in (1, 3, 4) for i in (0, 1)]  # what the three loopscans printed


# -- every command the README names exists, with its options -------------------------------------
def _subcommands() -> dict[str, argparse.ArgumentParser]:
    actions = build_parser()._subparsers._group_actions  # argparse has no public API for them
    return dict(actions[0].choices)


def _commands(block: Block) -> list[list[str]]:
    """The command lines of a console block: words, without output, comments and redirections."""
    found = []
    for line in block.code.replace("\\\n", " ").splitlines():  # continuation lines joined
        if line.startswith("$ "):
            words = shlex.split(line[2:], comments=True)
            words = words[:words.index(">")] if ">" in words else words
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value command
                words = words[1:]
            found.append(words)
    return found


CONSOLE = [(block, words) for block in BLOCKS if block.language == "console"
           for words in _commands(block)]


def check_command(words: list[str]) -> None:
    """Fails unless the command line ``words`` names a command and options that exist."""
    words = [re.sub(r"\$(\w+)", r"\1", word) for word in words]  # $VAR: any value parses
    command = words[0].removeprefix(".venv/bin/")
    if command == "export":
        assert all(re.fullmatch(r"[A-Z_]+=\S+", word) for word in words[1:]), words
    elif command == "./dev.sh":
        assert re.search(rf"^  {re.escape(words[1])}\)", DEV_SH.read_text(), re.MULTILINE), \
            f"dev.sh has no {words[1]!r} command"
    elif command == "tango-groups":
        try:
            build_parser().parse_args(words[1:])
        except SystemExit:
            raise AssertionError(f"tango-groups does not take {words[1:]}") from None
    elif command == "python":
        assert words[1] == "-c", words
        compile(words[2], "<python -c>", "exec")
    else:
        assert (BIN / command).is_file(), f"{command} is not installed with the project"
        options = [word.split("=")[0] for word in words[1:] if word.startswith("-")]
        if options:
            usage = subprocess.run([str(BIN / command), "--help"], capture_output=True,
                                   text=True, timeout=60, check=False).stdout
            missing = [option for option in options
                       if not re.search(rf"(^|[\s,]){option}\b", usage, re.MULTILINE)]
            assert not missing, f"{command} --help does not list {missing}"


@pytest.mark.parametrize(("block", "words"), CONSOLE,
                         ids=[f"{block.where}-{' '.join(words)[:40]}"
                              for block, words in CONSOLE])
def test_console_command_exists(block, words):
    check_command(words)


def test_console_commands_are_found():
    named = {words[0].removeprefix(".venv/bin/") for _, words in CONSOLE}
    assert {"./dev.sh", "tango-groups", "itango3", "json2tango", "SequenceManager"} <= named


INLINE = sorted({literal for path in DOCUMENTS
                 for literal in re.findall(r"``((?:\.venv/bin/)?tango-groups(?: [^`]*)?)``",
                                           path.read_text())})


@pytest.mark.parametrize("literal", INLINE)
def test_inline_tango_groups_command_exists(literal):
    words = literal.split()
    subcommands = _subcommands()
    if len(words) == 1:
        return
    assert words[1] in subcommands, f"no tango-groups {words[1]}"
    known = subcommands[words[1]]._option_string_actions
    assert {word for word in words if word.startswith("--")} <= known.keys(), literal


def test_command_line_section_names_only_existing_options():
    text = (ROOT / "docs" / "device.rst").read_text()
    section = text[text.index("Command line\n~~~~"):]  # the page's last section
    entries = re.findall(r"^``tango-groups (\w+)``\n((?:   .*\n)+)", section, re.MULTILINE)
    subcommands = _subcommands()
    assert {name for name, _ in entries} == set(subcommands), "a subcommand is not documented"
    for name, body in entries:
        known = subcommands[name]._option_string_actions
        named = set(re.findall(r"--[a-z][\w-]*", body))
        assert named <= known.keys(), f"tango-groups {name}: {named - known.keys()}"
