"""The documentation in ``docs/`` builds without a warning, and says what the code says.

Sphinx (the ``docs`` extra) builds it with ``-W`` (warnings are errors: a broken reference, a bad
table, a missing image, an ``include`` of README's walk-through whose markers moved) into a
temporary directory. The device reference tables are generated from the SequenceManager's own
declarations (``docs/_ext/device_reference.py``): every property, attribute and command the
device declares is in the built page, and the hand-written refusal table names every command.
README.rst stays the front door: it opens with the two commands and links to every page.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="Sphinx: the docs extra (./dev.sh test installs it)")

from tango_groups.devices.sequence_manager import SequenceManager

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
DECLARED = SequenceManager.TangoClassClass


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The HTML documentation, built with warnings as errors."""
    out = tmp_path_factory.mktemp("docs")
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html",
                             str(DOCS), str(out)], capture_output=True, text=True, timeout=240,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_every_page_is_built_and_the_screenshot_is_shipped(built):
    pages = {path.stem for path in DOCS.glob("*.rst")}
    assert pages <= {path.stem for path in built.glob("*.html")}
    assert (built / "_images" / "sequence_panel.png").is_file()


def test_device_reference_lists_every_declaration(built):
    page = html.unescape((built / "device.html").read_text())
    page = page.translate(str.maketrans("\u2018\u2019\u201c\u201d", "''\"\""))  # smart quotes
    declared = [*DECLARED.device_property_list, *DECLARED.attr_list, *DECLARED.cmd_list]
    assert declared, "nothing read from the device class"
    missing = [name for name in declared if f">{name}<" not in page]
    assert not missing, f"docs/device.rst does not show {missing}"
    for name, (_, doc, default, _) in DECLARED.device_property_list.items():
        assert " ".join(doc.split())[:40] in " ".join(page.split()), name


def test_refusal_table_names_every_command():
    text = (DOCS / "device.rst").read_text()
    table = text[text.index("How each command is refused:"):text.index("Attributes\n~~~")]
    assert set(re.findall(r"^   \* - ``(\w+)``", table, re.MULTILINE)) == set(DECLARED.cmd_list)


def test_walk_through_is_included_from_the_readme(built):
    page = html.unescape((built / "getting_started.html").read_text())
    assert "Five-minute walk-through" in page and "Three terminals, each in the checkout" in page


def test_readme_opens_with_the_two_commands_and_links_every_page():
    readme = (ROOT / "README.rst").read_text()
    first_block = readme[readme.index(".. code-block:: console"):].split("\n\n")[1]
    assert [line.split("#")[0].split() for line in first_block.splitlines()
            if line.strip().startswith("$")] == [["$", "./dev.sh", "serve"],
                                                  ["$", "./dev.sh", "test"]]
    linked = set(re.findall(r"<docs/(\w+)\.rst>`_", readme))
    assert linked == {path.stem for path in DOCS.glob("*.rst")} - {"index"}
