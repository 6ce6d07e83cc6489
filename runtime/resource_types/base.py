"""What every resource type is (REQUIREMENTS R6): the entry points, the property schema, the plug-in loader.

A resource type is a class found through the Python entry-point group
``wolfpack.resource_types`` (the MSCS "resource DLL").  A resource monitor
makes one instance per resource and calls its entry points, each in a thread
of its own, so a hung call never blocks the others:

=============  ==============================================================
entry point    contract
=============  ==============================================================
Open           check the properties and the environment; no side effects on
               the resource itself.  Raise :class:`EntryPointFailed`.
Close          forget the resource (it is not stopped).
Online         start the resource and return when it is online.  May take
               long: the monitor supervises it against PendingTimeout; call
               :meth:`Operation.report_pending` to show progress (it restarts
               PendingTimeout) and watch :attr:`Operation.cancelled`.
Offline        stop it gracefully; same rules as Online.
Terminate      stop it now, ungracefully; may run while Online or Offline is
               still in flight in another thread.
LooksAlive     a cheap check (<= 300 ms); return a bool.
IsAlive        a thorough check; return a bool.
Probe          is a copy of the resource running on this node, although the
               monitor did not start it here (a stray, or one an earlier
               monitor started)?  Starts nothing; return a :class:`Probe`.
               The default runs IsAlive; a type that can find a copy it did
               not start (by a pid file, a listening port) says so, and its
               Terminate then stops what the probe found.
=============  ==============================================================

Failures are raised as :class:`EntryPointFailed` with a :class:`Severity`.
The monitor reports them as the resource machine's events (``online_failed``
...) and passes the severity along as information; what to do about a
failure is the resource machine's decision, never the type's or the
monitor's.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

from wolfpack.errors import ResourceTypeError

ENTRY_POINT_GROUP = "wolfpack.resource_types"

#: Entry-point name (as in MSCS and the shared call record) -> method name.
ENTRY_POINTS = {
    "Open": "open",
    "Close": "close",
    "Online": "online",
    "Offline": "offline",
    "Terminate": "terminate",
    "LooksAlive": "looks_alive",
    "IsAlive": "is_alive",
    "Probe": "probe",
}


@dataclass(frozen=True)
class Probe:
    """What a probe found: whether a copy runs here, its processes if the type can name them, and how it knows.

    ``adoptable``: the copy is one this type started itself (an earlier monitor's), which its owner may adopt;
    ``stoppable``: Terminate can stop it (False: the type sees it, e.g. by its port, but cannot tell which process
    it is)."""

    active: bool
    detail: str = ""
    pids: tuple[int, ...] = ()
    adoptable: bool = False
    stoppable: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"active": self.active, "detail": self.detail, "pids": list(self.pids), "adoptable": self.adoptable,
                "stoppable": self.stoppable}


class Severity(StrEnum):
    """How bad a failure is (the OCF classes; see :mod:`wolfpack.runtime.resource_types.ocf`).

    ``soft``: the resource failed but may run again here (a restart may help).
    ``hard``: it cannot run on this node (not installed, no permission, bad argument).
    ``fatal``: it is misconfigured and cannot run on any node.
    """

    SOFT = "soft"
    HARD = "hard"
    FATAL = "fatal"


class EntryPointFailed(ResourceTypeError):
    """An entry point of a resource type failed; ``severity`` says how badly."""

    def __init__(self, message: str, severity: Severity = Severity.SOFT) -> None:
        super().__init__(message)
        self.severity = severity


# --- property schema ------------------------------------------------------------


@dataclass(frozen=True)
class Property:
    """One private property of a resource type (MSCS: a value under the resource's key)."""

    name: str
    kinds: tuple[type, ...]
    doc: str
    required: bool = False
    default: Any = None
    #: Extra check on a value of the right kind: returns a problem ("must be ...") or None.
    check: Callable[[Any], str | None] | None = None

    def problem(self, value: Any) -> str | None:
        if value is None and not self.required and self.default is None:
            return None
        is_bool = isinstance(value, bool)
        fits = any(isinstance(value, k) and (k is bool or not is_bool) for k in self.kinds)
        if not fits:
            wanted = " or ".join(_kind_name(k) for k in self.kinds)
            return f"{self.name!r} must be {wanted}, not {_kind_name(type(value))} {value!r}"
        if self.check is not None:
            issue = self.check(value)
            if issue:
                return f"{self.name!r} {issue}"
        return None


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "an integer", bool: "true/false", list: "a list", dict: "a mapping",
            float: "a number", type(None): "null"}.get(kind, kind.__name__)


@dataclass(frozen=True)
class PropertySchema:
    """The private properties of a type; :meth:`validate` reports every problem at once."""

    properties: tuple[Property, ...]
    by_name: dict[str, Property] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {p.name: p for p in self.properties})

    def validate(self, values: Any, *, type_name: str, resource: str) -> dict[str, Any]:
        """The properties with defaults filled in, or :class:`ResourceTypeError` listing every problem."""
        if not isinstance(values, Mapping):
            raise ResourceTypeError(
                f"resource {resource!r} ({type_name}): properties must be a mapping of name to value, "
                f"not {type(values).__name__}; give them as a JSON object"
            )
        problems = [
            f"unknown property {name!r}" for name in values if name not in self.by_name
        ]
        result: dict[str, Any] = {}
        for prop in self.properties:
            if prop.name not in values:
                if prop.required:
                    problems.append(f"{prop.name!r} is required ({prop.doc})")
                result[prop.name] = _copy_default(prop.default)
                continue
            issue = prop.problem(values[prop.name])
            if issue:
                problems.append(issue)
            result[prop.name] = values[prop.name]
        if problems:
            known = ", ".join(p.name for p in self.properties)
            raise ResourceTypeError(
                f"resource {resource!r}: its properties do not fit the {type_name} schema: "
                + "; ".join(problems)
                + f". Fix the resource's properties (the type knows: {known})"
            )
        return result

    def describe(self) -> list[dict[str, Any]]:
        """The schema as data (for the command line and documentation)."""
        return [
            {"name": p.name, "kinds": [_kind_name(k) for k in p.kinds], "required": p.required,
             "default": p.default, "doc": p.doc}
            for p in self.properties
        ]


def _copy_default(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


# --- what a type instance gets from its monitor ------------------------------------


@dataclass
class ResourceContext:
    """What the monitor tells a resource type instance about its surroundings."""

    resource_id: str
    #: A directory of this resource's own (logs, pid files), kept across monitor restarts.
    work_dir: Path
    looks_alive_ms: int
    is_alive_ms: int
    pending_timeout_ms: int
    #: ``log(message, level)``; thread-safe; the line reaches the daemon's log.
    log: Callable[[str, str], None] = field(default=lambda message, level: None)


class Operation:
    """One Online or Offline call in flight (MSCS: the pending operation and its worker)."""

    def __init__(self, entry_point: str, on_progress: Callable[[str], None] | None = None) -> None:
        self.entry_point = entry_point
        #: Set when the monitor no longer waits for this call (PendingTimeout, superseded, Terminate).
        self.cancelled = threading.Event()
        self._on_progress = on_progress
        self._lock = threading.Lock()
        self._on_cancel: list[Callable[[], None]] = []

    def report_pending(self, detail: str = "") -> None:
        """The operation makes progress: PendingTimeout starts again (MSCS SetResourceStatus)."""
        if self._on_progress is not None and not self.cancelled.is_set():
            self._on_progress(detail)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True at once if the operation was cancelled."""
        return self.cancelled.wait(seconds)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` (in the cancelling thread) when the operation is cancelled; at once if it is."""
        with self._lock:
            if not self.cancelled.is_set():
                self._on_cancel.append(callback)
                return
        callback()

    def cancel(self) -> None:
        """The monitor gives up on this call (called by the monitor, not by types)."""
        with self._lock:
            if self.cancelled.is_set():
                return
            self.cancelled.set()
            callbacks, self._on_cancel = self._on_cancel, []
        for callback in callbacks:
            callback()


# --- the plug-in interface ------------------------------------------------------------


class ResourceType(ABC):
    """A resource type.  Subclasses set ``type_name`` and ``schema`` and implement the entry points."""

    type_name: ClassVar[str]
    schema: ClassVar[PropertySchema] = PropertySchema(())

    def __init__(self, resource_id: str, properties: Mapping[str, Any], context: ResourceContext) -> None:
        self.resource_id = resource_id
        self.context = context
        self.properties = self.schema.validate(properties, type_name=self.type_name, resource=resource_id)

    def log(self, message: str, level: str = "info") -> None:
        self.context.log(message, level)

    def open(self) -> None:  # noqa: B027 - optional entry point
        """Open: check the environment (the schema is already checked)."""

    def close(self) -> None:  # noqa: B027 - optional entry point
        """Close: release what Open took (the resource keeps running)."""

    @abstractmethod
    def online(self, op: Operation) -> None:
        """Bring the resource online; raise :class:`EntryPointFailed` on failure."""

    @abstractmethod
    def offline(self, op: Operation) -> None:
        """Take the resource offline gracefully; raise :class:`EntryPointFailed` on failure."""

    @abstractmethod
    def terminate(self) -> None:
        """Stop the resource at once."""

    @abstractmethod
    def looks_alive(self) -> bool:
        """The cheap check."""

    @abstractmethod
    def is_alive(self) -> bool:
        """The thorough check."""

    def probe(self) -> Probe:
        """Probe (reconciliation before a join): by default IsAlive, a failure meaning nothing runs."""
        try:
            alive = bool(self.is_alive())
        except EntryPointFailed as exc:
            return Probe(False, f"IsAlive: {exc}")
        return Probe(alive, "IsAlive passed" if alive else "IsAlive returned false")


# --- finding types ---------------------------------------------------------------------


def available_types() -> list[str]:
    """The names of the installed resource types (without importing them)."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_type(name: str) -> type[ResourceType]:
    """The resource type registered as ``name``.

    A name of the form ``package.module:Class`` imports that class directly;
    this is for developing a type before it is packaged, and for tests.
    """
    if ":" in name and " " not in name:
        module_name, _, attr = name.partition(":")
        try:
            loaded = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ResourceTypeError(
                f"resource type {name!r} cannot be imported ({exc}); check the module path and that it is installed"
            ) from exc
        return _checked(name, loaded)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                loaded = ep.load()
            except Exception as exc:
                raise ResourceTypeError(
                    f"resource type {name!r} is registered as {ep.value!r} but cannot be loaded ({exc}); "
                    "reinstall the package that provides it"
                ) from exc
            return _checked(name, loaded)
    known = ", ".join(repr(n) for n in available_types()) or "none"
    raise ResourceTypeError(
        f"unknown resource type {name!r}: no plug-in in the entry-point group {ENTRY_POINT_GROUP!r} has that name; "
        f"use one of {known} or install the package that provides it"
    )


def load_types() -> dict[str, type[ResourceType]]:
    """Every installed resource type by name."""
    return {name: load_type(name) for name in available_types()}


def _checked(name: str, loaded: Any) -> type[ResourceType]:
    if not (isinstance(loaded, type) and issubclass(loaded, ResourceType)):
        raise ResourceTypeError(
            f"resource type {name!r} resolves to {loaded!r}, which is not a ResourceType subclass; "
            "fix the plug-in's entry point"
        )
    return loaded
