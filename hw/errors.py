"""The hw layer's errors: one branch of Wolfpack's exception tree (:class:`wolfpack.errors.DeviceError`).

What each means for the cluster:

* :class:`ReservationConflict`: this node does not own the disk (another holds the
  reservation, or this node's key was preempted): ownership is lost, never retried;
  :class:`OwnershipLost` is the same refusal met by the quorum log's reads and writes;
* :class:`UnitAttention`: a reset, preempt or release happened since this initiator's
  last command; the command did not run and is retried (by the device layer);
* :class:`IllegalRequest`: the target does not support a command or field (tgt and
  PREEMPT AND ABORT): use another variant;
* :class:`DeviceTimeout`: no answer in time: the state of the reservation is unknown,
  which the arbitration machines treat as lost;
* :class:`DeviceFailed`: the path or the device failed; :class:`CheckCondition`: any
  other sense data; :class:`NotSupported`: the transport cannot do this at all.
"""

from __future__ import annotations

from wolfpack.errors import DeviceError


class ReservationConflict(DeviceError):
    """RESERVATION CONFLICT: another initiator holds the reservation or this node is not registered."""


class CheckCondition(DeviceError):
    """CHECK CONDITION with sense data; ``additional`` is (ASC, ASCQ)."""

    def __init__(self, message: str, additional: tuple[int, int] = (0, 0)) -> None:
        super().__init__(message)
        self.additional = additional


class UnitAttention(CheckCondition):
    """UNIT ATTENTION: reported once per I_T nexus; the command did not run and can be sent again."""


class IllegalRequest(CheckCondition):
    """ILLEGAL REQUEST: unsupported command, service action or field."""


class DeviceTimeout(DeviceError):
    """No answer within the command timeout."""


class DeviceFailed(DeviceError):
    """The command did not complete: transport error, device gone, BUSY."""


class NotSupported(DeviceError):
    """The transport cannot carry out the request (e.g. a reset level the target lacks)."""


class OwnershipLost(ReservationConflict):
    """A write to the quorum disk (the quorum log) was refused with RESERVATION CONFLICT: another node owns it."""
