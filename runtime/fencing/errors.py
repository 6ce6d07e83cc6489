"""The fencing layer's errors: one branch of Wolfpack's exception tree (:class:`wolfpack.errors.FencingError`).

* :class:`AgentNotFound`: the fence agent named by a device is not installed;
* :class:`FenceConfigError`: a device's parameters do not fit its agent (also a
  :class:`~wolfpack.errors.ConfigError`, so configuration checks report it);
* :class:`AgentFailed`: an agent ran but did not do what was asked (its
  metadata could not be read, say);
* :class:`NoFenceDevice`: no configured device covers the node to fence;
* :class:`FenceFailed`: every device that covers the node failed: the node is
  *not* known to be off, so its resources must not be taken over.
"""

from __future__ import annotations

from wolfpack.errors import ConfigError, FencingError


class AgentNotFound(FencingError):
    """The fence agent executable does not exist (or is not executable)."""


class FenceConfigError(FencingError, ConfigError):
    """A fence device's name, agent parameters or node map is invalid."""


class AgentFailed(FencingError):
    """A fence agent ran and failed, timed out, or broke the agent protocol."""


class NoFenceDevice(FencingError):
    """No fence device covers the node."""


class FenceFailed(FencingError):
    """Every fence device that covers the node failed; the node may still be running."""
