"""Wolfpack's one exception tree.

Every error a user can meet derives from :class:`WolfpackError` and carries a
message of the form "what is wrong, why, what to do instead".
"""

from __future__ import annotations


class WolfpackError(Exception):
    """Root of every error Wolfpack raises on purpose."""


class SpecError(WolfpackError):
    """A specification (state machine table) is malformed or inconsistent."""


class InvalidEvent(WolfpackError):
    """An event a machine does not accept in its current state (or at all)."""


class ConfigError(WolfpackError):
    """A configuration value is missing, malformed or violates a constraint."""


class DependencyError(ConfigError):
    """A resource dependency graph is invalid (cycle, unknown or cross-group)."""


class ProtocolError(WolfpackError):
    """A message from the network is malformed, oversized, of an unknown kind or version."""


class AuthenticationError(ProtocolError):
    """A peer or a frame failed authentication (wrong cluster key, bad MAC, replayed sequence number)."""


class DatabaseError(WolfpackError):
    """The cluster database or the quorum log is unreadable, corrupt or stale."""


class ResourceTypeError(WolfpackError):
    """A resource type is unknown, or a resource's properties do not fit its type's schema."""


class MonitorError(WolfpackError):
    """A resource monitor process failed, or broke the monitor protocol."""


class DeviceError(WolfpackError):
    """A shared disk (reservation device) refused a command, failed, or could not be reached (``wolfpack.hw``)."""


class FencingError(WolfpackError):
    """A fence device (STONITH) is misconfigured, or could not fence a node (``wolfpack.runtime.fencing``)."""
