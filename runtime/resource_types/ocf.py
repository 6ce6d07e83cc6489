"""OCF resource agents: exit codes, their meaning for the resource machine, meta-data.

The Open Cluster Framework resource-agent API (the agents of the
``resource-agents`` package, as Pacemaker runs them) maps onto MSCS entry
points as follows (Generic Script in ``ocf`` mode):

============  ====================  ==========================================
entry point   agent action          result
============  ====================  ==========================================
Open          ``meta-data``,        parameters checked against the meta-data;
              ``validate-all``      a non-zero exit fails Open
Online        ``start``             0: ``online_succeeded``, else ``online_failed``
Offline       ``stop``              0 (or 7): ``offline_succeeded``, else ``offline_failed``
LooksAlive    ``monitor``           OCF_CHECK_LEVEL=0; 0 (or 8): alive, else
                                    ``looks_alive_failed``
IsAlive       ``monitor``           OCF_CHECK_LEVEL=10; 0 (or 8): alive, else
                                    ``is_alive_failed``
Terminate     ``stop``              after killing the agent's actions in flight
============  ====================  ==========================================

Every failure carries a severity (Pacemaker's classes), passed with the event
as information for the administrator and the daemon; the restart decision is
the resource machine's:

====  ======================  ========
code  name                    severity
====  ======================  ========
0     OCF_SUCCESS             (success)
1     OCF_ERR_GENERIC         soft
2     OCF_ERR_ARGS            hard
3     OCF_ERR_UNIMPLEMENTED   hard
4     OCF_ERR_PERM            hard
5     OCF_ERR_INSTALLED       hard
6     OCF_ERR_CONFIGURED      fatal
7     OCF_NOT_RUNNING         soft (a success for ``stop``)
8     OCF_RUNNING_PROMOTED    (alive for ``monitor``)
9     OCF_FAILED_PROMOTED     soft
else  (not OCF)               soft
====  ======================  ========
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from enum import IntEnum

from wolfpack.errors import ResourceTypeError
from wolfpack.runtime.resource_types.base import Severity

DEFAULT_OCF_ROOT = "/usr/lib/ocf"

#: Check depths for ``monitor`` (OCF_CHECK_LEVEL): LooksAlive is the shallow one.
LOOKS_ALIVE_CHECK_LEVEL = 0
IS_ALIVE_CHECK_LEVEL = 10


class OcfExit(IntEnum):
    SUCCESS = 0
    ERR_GENERIC = 1
    ERR_ARGS = 2
    ERR_UNIMPLEMENTED = 3
    ERR_PERM = 4
    ERR_INSTALLED = 5
    ERR_CONFIGURED = 6
    NOT_RUNNING = 7
    RUNNING_PROMOTED = 8
    FAILED_PROMOTED = 9


_SEVERITY = {
    OcfExit.ERR_ARGS: Severity.HARD,
    OcfExit.ERR_UNIMPLEMENTED: Severity.HARD,
    OcfExit.ERR_PERM: Severity.HARD,
    OcfExit.ERR_INSTALLED: Severity.HARD,
    OcfExit.ERR_CONFIGURED: Severity.FATAL,
}

_MEANING = {
    OcfExit.SUCCESS: "success",
    OcfExit.ERR_GENERIC: "generic error",
    OcfExit.ERR_ARGS: "invalid argument",
    OcfExit.ERR_UNIMPLEMENTED: "action not implemented",
    OcfExit.ERR_PERM: "insufficient permission",
    OcfExit.ERR_INSTALLED: "required software not installed",
    OcfExit.ERR_CONFIGURED: "not configured",
    OcfExit.NOT_RUNNING: "not running",
    OcfExit.RUNNING_PROMOTED: "running (promoted)",
    OcfExit.FAILED_PROMOTED: "failed (promoted)",
}


def severity(code: int) -> Severity:
    """The severity of a failed action's exit code."""
    try:
        return _SEVERITY.get(OcfExit(code), Severity.SOFT)
    except ValueError:
        return Severity.SOFT


def meaning(code: int) -> str:
    """``"7 (not running)"``: an exit code in words."""
    try:
        return f"{code} ({_MEANING[OcfExit(code)]})"
    except (ValueError, KeyError):
        return f"{code} (not an OCF exit code)" if code >= 0 else f"killed by signal {-code}"


def succeeded(action: str, code: int) -> bool:
    """Did ``action`` succeed (for ``monitor``: is the resource alive)?"""
    if action == "stop":
        return code in (OcfExit.SUCCESS, OcfExit.NOT_RUNNING)
    if action == "monitor":
        return code in (OcfExit.SUCCESS, OcfExit.RUNNING_PROMOTED)
    return code == OcfExit.SUCCESS


# --- meta-data -------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    name: str
    required: bool
    content_type: str
    default: str | None
    shortdesc: str


@dataclass(frozen=True)
class MetaData:
    name: str
    parameters: tuple[Parameter, ...]
    actions: tuple[str, ...]

    def problems(self, values: dict[str, str]) -> list[str]:
        """What is wrong with these parameters for this agent (all problems at once)."""
        known = {p.name: p for p in self.parameters}
        found = [f"unknown parameter {name!r}" for name in values if name not in known]
        for p in self.parameters:
            if p.required and p.name not in values:
                found.append(f"parameter {p.name!r} is required ({p.shortdesc})")
            elif p.name in values and not _fits(p.content_type, values[p.name]):
                found.append(f"parameter {p.name!r} must be {p.content_type}, not {values[p.name]!r}")
        return found


_BOOLEAN = {"1", "0", "true", "false", "yes", "no", "on", "off", "y", "n"}


def _fits(content_type: str, value: str) -> bool:
    if content_type == "integer":
        return value.lstrip("+-").isdigit()
    if content_type == "boolean":
        return value.lower() in _BOOLEAN
    return True


def parse_meta_data(text: str, agent: str) -> MetaData:
    """Read an agent's ``meta-data`` XML."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ResourceTypeError(
            f"OCF agent {agent!r} printed meta-data that is not XML ({exc}); check that it is an OCF resource agent"
        ) from exc
    if root.tag != "resource-agent":
        raise ResourceTypeError(
            f"OCF agent {agent!r}: meta-data root is <{root.tag}>, not <resource-agent>; is it an OCF agent?"
        )
    params = []
    for node in root.iterfind("./parameters/parameter"):
        content = node.find("content")
        params.append(Parameter(
            name=node.get("name", ""),
            required=node.get("required", "0") in ("1", "true"),
            content_type=content.get("type", "string") if content is not None else "string",
            default=content.get("default") if content is not None else None,
            shortdesc=(node.findtext("shortdesc") or "").strip(),
        ))
    actions = tuple(a.get("name", "") for a in root.iterfind("./actions/action"))
    return MetaData(name=root.get("name", agent), parameters=tuple(params), actions=actions)
