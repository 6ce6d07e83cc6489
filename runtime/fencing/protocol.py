"""The agent side of the fence-agent protocol, for Wolfpack's own agents (``fence_wolfpack_*``).

An agent reads ``key=value`` lines from standard input (and, for use by hand,
``--key=value`` arguments), carries out ``action``, and exits 0 on success,
1 on error, 2 for ``status`` of a node that is off.  ``metadata`` prints XML in
the fence-agents format (``<resource-agent>``, ``<parameters>``, ``<actions>``),
which :func:`wolfpack.runtime.fencing.agents.parse_metadata` reads back.
Unknown parameters are reported on standard error and ignored, as the
fence-agents library does (the fencer may pass ``nodename`` and the like).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO
from xml.sax.saxutils import quoteattr

from wolfpack.errors import FencingError

EXIT_OK, EXIT_ERROR, EXIT_OFF = 0, 1, 2


class AgentError(FencingError):
    """An agent cannot carry out the action; the message goes to standard error, the exit status is 1."""


@dataclass(frozen=True)
class Param:
    """A parameter an agent declares in its metadata."""

    name: str
    shortdesc: str
    required: bool = False
    type: str = "string"
    default: str | None = None
    obsoletes: str | None = None


#: The parameters every agent accepts.
COMMON = (
    Param("action", "Fencing action", required=True, default="off"),
    Param("plug", "Physical plug number on device, UUID or identification of machine", obsoletes="port"),
    Param("port", "Physical plug number (deprecated: use plug)"),
    Param("nodename", "Name or id of the node this agent runs for (set by the fencer)"),
    Param("verbose", "Verbose mode", type="boolean"),
)


def parse_request(lines: Sequence[str], argv: Sequence[str] = ()) -> dict[str, str]:
    """The parameters of ``key=value`` lines (comments and blanks skipped) and ``--key=value`` arguments."""
    params: dict[str, str] = {}
    for raw in [*lines, *(a[2:] for a in argv if a.startswith("--"))]:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        params[key.strip().replace("-", "_")] = value.strip() if sep else "1"
    if "port" in params and "plug" not in params:
        params["plug"] = params["port"]
    return params


def metadata_xml(name: str, shortdesc: str, longdesc: str, params: Sequence[Param], actions: Sequence[str]) -> str:
    """The ``action=metadata`` XML, laid out like the fence-agents library's."""
    out = ['<?xml version="1.0" ?>', f"<resource-agent name={quoteattr(name)} shortdesc={quoteattr(shortdesc)} >",
           f"<longdesc>{_text(longdesc)}</longdesc>", "<vendor-url></vendor-url>", "<parameters>"]
    for p in params:
        obsoletes = f" obsoletes={quoteattr(p.obsoletes)}" if p.obsoletes else ""
        default = f" default={quoteattr(p.default)}" if p.default is not None else ""
        out += [f'\t<parameter name={quoteattr(p.name)} unique="0" required="{int(p.required)}"{obsoletes}>',
                f'\t\t<getopt mixed="--{p.name.replace("_", "-")}=[{p.name}]" />',
                f"\t\t<content type={quoteattr(p.type)}{default} />",
                f'\t\t<shortdesc lang="en">{_text(p.shortdesc)}</shortdesc>', "\t</parameter>"]
    out += ["</parameters>", "<actions>", *(f"\t<action name={quoteattr(a)} />" for a in actions), "</actions>",
            "</resource-agent>"]
    return "\n".join(out) + "\n"


def _text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


Handler = Callable[[str, dict[str, str], TextIO], int]


def main(handler: Handler, known: Sequence[Param], actions: Sequence[str], argv: Sequence[str] | None = None,
         stdin: TextIO | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Read the request, check the action, run ``handler(action, params, stdout)``; the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    lines = [] if stdin.isatty() else stdin.read().splitlines()
    params = parse_request(lines, argv)
    names = {p.name for p in known}
    for key in sorted(set(params) - names):
        del params[key]  # its value is not echoed: it may be a secret
        print(f"WARNING: Parse error: Ignoring unknown option '{key}'", file=stderr)
    action = params.get("action", "off")
    if action not in actions:
        print(f"ERROR: unknown action {action!r}: use one of {', '.join(actions)}", file=stderr)
        return EXIT_ERROR
    try:
        return handler(action, params, stdout)
    except AgentError as error:
        print(f"ERROR: {error}", file=stderr)
        return EXIT_ERROR
