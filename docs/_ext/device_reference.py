"""``.. device-reference:: properties|attributes|commands``: the tables of the SequenceManager's
reference, read at build time from the device's own declarations so they cannot drift.

The device class is imported (``tango_groups.devices.sequence_manager``); pytango's metaclass has
collected its ``device_property`` (type, doc, default), ``attribute`` (type, format, display
level, doc) and ``command`` (argument and result types with their docs, the method's docstring)
declarations in ``SequenceManager.TangoClassClass``, in declaration order. Each table is written
as an RST ``list-table`` and parsed in place.
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.nodes import nested_parse_with_titles

_SPECIAL = re.compile(r"([\\*`|])|_(?=\W|$)")


def text(value: Any) -> str:
    """``value`` as RST text: inline markup characters escaped, on one line."""
    return _SPECIAL.sub(lambda match: "\\" + match.group(0), " ".join(str(value).split()))


def literal(value: Any) -> str:
    return f"``{value}``" if str(value) else "(none)"


def properties(device: type) -> list[list[str]]:
    rows = [["Property", "Type", "Default", "Meaning"]]
    for name, (dtype, doc, default, _) in device.TangoClassClass.device_property_list.items():
        shown = "\\n".join(default) if isinstance(default, list) else default
        rows.append([literal(name), str(dtype), literal(shown), text(doc)])
    return rows


def attributes(device: type) -> list[list[str]]:
    rows = [["Attribute", "Type", "What"]]
    for name, declared in device.TangoClassClass.attr_list.items():
        kind = f"{declared.attr_type} {str(declared.attr_format).lower()}"
        labels = declared.att_prop.enum_labels
        kind += f" ({' / '.join(labels.split(','))})" if labels else ""
        kind += ", expert" if str(declared.display_level) == "EXPERT" else ""
        rows.append([literal(name), text(kind), text(declared.__doc__)])
    return rows


def commands(device: type) -> list[list[str]]:
    rows = [["Command", "Argument", "Result", "What"]]
    for name, ((type_in, doc_in), (type_out, doc_out), _) in (
            device.TangoClassClass.cmd_list.items()):
        argument = "none" if str(type_in) == "DevVoid" else f"{type_in}: {text(doc_in)}"
        rows.append([literal(name), argument, f"{type_out}: {text(doc_out)}",
                     text(getattr(device, name).__doc__)])
    return rows


TABLES = {"properties": properties, "attributes": attributes, "commands": commands}


WIDTHS = {"properties": "18 12 16 54", "attributes": "18 24 58", "commands": "14 30 26 30"}


def list_table(rows: list[list[str]], widths: str) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in rows:
        lines += [f"   * - {row[0]}", *(f"     - {cell}" for cell in row[1:])]
    return lines


class DeviceReference(Directive):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        from tango_groups.devices.sequence_manager import SequenceManager

        which = self.arguments[0]
        if which not in TABLES:
            raise self.error(f"device-reference: {which!r} is none of {', '.join(TABLES)}")
        container = nodes.container()
        source = self.state_machine.get_source_and_line(self.lineno)[0]
        content = StringList(list_table(TABLES[which](SequenceManager), WIDTHS[which]),
                             source=source)
        nested_parse_with_titles(self.state, content, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("device-reference", DeviceReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
