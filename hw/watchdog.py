"""Watchdog devices: a node that stops petting its watchdog is reset by it, so it can no longer touch shared resources.

The daemon pets the watchdog only while its lease (membership, quorum ownership) is
fresh; a node that hangs, or loses its lease and cannot stop its resources in time,
is reset by the hardware before another node takes those resources over.  Drivers
follow one interface, :class:`Watchdog`, like the transports of :mod:`wolfpack.hw.transport`:

* :class:`LinuxWatchdog`: ``/dev/watchdog*`` through ``write`` and the ``WDIOC_*``
  ioctls of ``<linux/watchdog.h>`` (softdog in a lab, iTCO_wdt, ipmi_watchdog, ...);
* :class:`NullWatchdog`: no watchdog (``node.watchdog = "none"``, the default);
* :class:`FakeWatchdog` on a :class:`FakeWatchdogDevice`: the Linux semantics in
  memory, on an injected clock, for tests and the simulator.

Linux semantics the drivers rely on: opening the device arms it (with the driver's
default timeout until ``WDIOC_SETTIMEOUT``); only one process may hold it open
(``EBUSY`` otherwise; ``/dev/watchdog`` and ``/dev/watchdog0`` are the same device);
any write or ``WDIOC_KEEPALIVE`` restarts the countdown; writing ``'V'`` and then
closing (the "magic close") disarms it, unless the driver was loaded with
``nowayout=1``; closing without it leaves the countdown running, so the node is
reset one timeout later unless the device is opened and petted again.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Self

from wolfpack.errors import ConfigError, DeviceError

# --- <asm-generic/ioctl.h> and <linux/watchdog.h> ----------------------------------------------------------------

_IOC_NRBITS, _IOC_TYPEBITS, _IOC_SIZEBITS = 8, 8, 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_WRITE, _IOC_READ = 1, 2


def _IOC(direction: int, type_: int, nr: int, size: int) -> int:
    """The kernel's ``_IOC`` macro: direction, type (a character), number and argument size packed into a request."""
    return (direction << _IOC_DIRSHIFT) | (size << _IOC_SIZESHIFT) | (type_ << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT)


def _IOR(type_: int, nr: int, size: int) -> int:
    return _IOC(_IOC_READ, type_, nr, size)


def _IOWR(type_: int, nr: int, size: int) -> int:
    return _IOC(_IOC_READ | _IOC_WRITE, type_, nr, size)


class WatchdogInfo(ctypes.Structure):
    """``struct watchdog_info``: what ``WDIOC_GETSUPPORT`` fills in (40 bytes)."""

    _fields_ = [("options", ctypes.c_uint32), ("firmware_version", ctypes.c_uint32),
                ("identity", ctypes.c_char * 32)]


WATCHDOG_IOCTL_BASE = ord("W")
_INT = ctypes.sizeof(ctypes.c_int)
WDIOC_GETSUPPORT = _IOR(WATCHDOG_IOCTL_BASE, 0, ctypes.sizeof(WatchdogInfo))
WDIOC_GETSTATUS = _IOR(WATCHDOG_IOCTL_BASE, 1, _INT)
WDIOC_GETBOOTSTATUS = _IOR(WATCHDOG_IOCTL_BASE, 2, _INT)
WDIOC_SETOPTIONS = _IOR(WATCHDOG_IOCTL_BASE, 4, _INT)
WDIOC_KEEPALIVE = _IOR(WATCHDOG_IOCTL_BASE, 5, _INT)
WDIOC_SETTIMEOUT = _IOWR(WATCHDOG_IOCTL_BASE, 6, _INT)
WDIOC_GETTIMEOUT = _IOR(WATCHDOG_IOCTL_BASE, 7, _INT)
WDIOC_GETTIMELEFT = _IOR(WATCHDOG_IOCTL_BASE, 10, _INT)

#: ``watchdog_info.options`` bits.
WDIOF_SETTIMEOUT = 0x0080
WDIOF_MAGICCLOSE = 0x0100
WDIOF_KEEPALIVEPING = 0x8000
#: ``WDIOC_SETOPTIONS`` arguments.
WDIOS_DISABLECARD, WDIOS_ENABLECARD = 0x0001, 0x0002

#: Written just before close, it disarms the watchdog (the "magic close").
MAGIC_CLOSE = b"V"
DEFAULT_DEVICE = "/dev/watchdog"
NONE = "none"

Ioctl = Callable[[int, int, Any], Any]
Clock = Callable[[], float]


# --- errors --------------------------------------------------------------------------------------------------------

class WatchdogError(DeviceError):
    """A watchdog device could not be opened, armed, petted or disarmed."""


class WatchdogUnavailable(WatchdogError):
    """There is no usable watchdog at the configured path (missing, not a watchdog, or no permission)."""


class WatchdogBusy(WatchdogError):
    """Another process holds the watchdog open (Linux allows one opener)."""


class WatchdogTimeoutRejected(WatchdogError):
    """The device refused the requested timeout; ``accepted`` is the timeout it keeps (``None`` if unknown)."""

    def __init__(self, message: str, accepted: int | None = None) -> None:
        super().__init__(message)
        self.accepted = accepted


def _open_error(error: OSError, path: str) -> WatchdogError:
    """Map an ``open(2)`` failure to the error a user can act on."""
    reason = error.strerror or str(error)
    if error.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return WatchdogUnavailable(f"no watchdog device at {path} ({reason}): load a driver (softdog for a lab) "
                                   f'or set node.watchdog = "{NONE}"')
    if error.errno in (errno.EACCES, errno.EPERM):
        return WatchdogUnavailable(f"permission denied opening the watchdog {path} ({reason}): run the daemon as "
                                   f"root or grant it write access to {path} (a udev rule)")
    if error.errno == errno.EBUSY:
        return WatchdogBusy(f"the watchdog {path} is busy ({reason}): another process holds it open (systemd's "
                            "RuntimeWatchdogSec, wdmd, watchdog(8) or another wolfpackd; /dev/watchdog and "
                            "/dev/watchdog0 are one device); stop that user or configure another device")
    return WatchdogError(f"cannot open the watchdog {path} ({reason})")


def _check_seconds(seconds: int) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= 0x7FFF_FFFF:
        raise ValueError(f"a watchdog timeout is a whole number of seconds, at least 1, not {seconds!r}")


# --- the interface -------------------------------------------------------------------------------------------------

class Watchdog(ABC):
    """One watchdog as the daemon uses it: open (arms it), set the timeout, pet it, close with or without magic."""

    #: True only for :class:`NullWatchdog`: petting it protects nothing.
    is_null: ClassVar[bool] = False

    @property
    @abstractmethod
    def name(self) -> str:
        """A short name for logs: the device path, or ``"none"``."""

    @property
    @abstractmethod
    def is_open(self) -> bool:
        """Whether the device is held open (and so armed)."""

    @abstractmethod
    def open(self) -> None:
        """Open the device, which arms it with its current timeout.  Opening an open watchdog does nothing.

        Raises :class:`WatchdogUnavailable` or :class:`WatchdogBusy`."""

    @abstractmethod
    def set_timeout(self, seconds: int) -> int:
        """Ask for a timeout of ``seconds``, restarting the countdown; return the timeout the device accepted
        (a driver may round it).  Raises :class:`WatchdogTimeoutRejected`."""

    @abstractmethod
    def get_timeout(self) -> int:
        """The device's current timeout in seconds."""

    @abstractmethod
    def keepalive(self) -> None:
        """Pet the watchdog: restart the countdown."""

    @abstractmethod
    def close(self, magic: bool = True) -> None:
        """Close the device.  ``magic=True`` writes ``'V'`` first, which disarms it (a clean stop);
        ``magic=False`` leaves it armed, so it resets the node one timeout later (the daemon could not stop
        its resources and must be fenced).  Closing a closed watchdog does nothing."""

    def identity(self) -> str | None:
        """The driver's identity string (``WDIOC_GETSUPPORT``), if known."""
        return None

    def __enter__(self) -> Self:
        if not self.is_open:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        """Leave the block with a magic close; call ``close(magic=False)`` inside it to leave the device armed."""
        self.close(magic=True)


# --- Linux ---------------------------------------------------------------------------------------------------------

class LinuxWatchdog(Watchdog):
    """A Linux watchdog character device (``/dev/watchdog``, ``/dev/watchdogN``).

    ``ioctl``, ``os_open``, ``os_write`` and ``os_close`` replace the system calls in
    tests.  The file descriptor is not inherited by child processes (PEP 446): a
    resource monitor holding it would keep the device open after the daemon's close.
    """

    def __init__(self, path: str = DEFAULT_DEVICE, *, ioctl: Ioctl = fcntl.ioctl,
                 os_open: Callable[[str, int], int] = os.open, os_write: Callable[[int, bytes], int] = os.write,
                 os_close: Callable[[int], None] = os.close) -> None:
        self.path = path
        self._ioctl, self._open, self._write, self._close = ioctl, os_open, os_write, os_close
        self._fd: int | None = None
        self._ping_by_write = False
        #: ``watchdog_info`` as read at open (``None`` if the driver does not answer ``WDIOC_GETSUPPORT``).
        self.options: int | None = None
        self.firmware_version: int | None = None
        self._identity: str | None = None

    @property
    def name(self) -> str:
        return self.path

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def _require_fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"the watchdog {self.path} is not open: call open() first")
        return self._fd

    def open(self) -> None:
        if self._fd is not None:
            return
        try:
            fd = self._open(self.path, os.O_WRONLY)
        except OSError as error:
            raise _open_error(error, self.path) from None
        info = WatchdogInfo()
        try:
            self._ioctl(fd, WDIOC_GETSUPPORT, info)
        except OSError as error:
            if error.errno == errno.ENOTTY:
                self._close(fd)
                raise WatchdogUnavailable(f"{self.path} is not a watchdog device (it does not answer "
                                          "WDIOC_GETSUPPORT): configure a /dev/watchdog* device or "
                                          f'node.watchdog = "{NONE}"') from None
        else:
            self.options, self.firmware_version = int(info.options), int(info.firmware_version)
            self._identity = bytes(info.identity).decode("ascii", "replace") or None
        self._fd = fd
        self._ping_by_write = False

    def _int_ioctl(self, request: int, value: int = 0) -> int:
        argument = ctypes.c_int(value)
        self._ioctl(self._require_fd(), request, argument)
        return int(argument.value)

    def set_timeout(self, seconds: int) -> int:
        _check_seconds(seconds)
        self._require_fd()
        try:
            return self._int_ioctl(WDIOC_SETTIMEOUT, seconds)
        except OSError as error:
            reason = error.strerror or str(error)
            try:
                current: int | None = self.get_timeout()
            except WatchdogError:
                current = None
            keeps = f"it keeps {current} s" if current is not None else "its timeout is unknown"
            if error.errno in (errno.EOPNOTSUPP, errno.ENOTTY):
                raise WatchdogTimeoutRejected(
                    f"the watchdog {self.path} cannot change its timeout ({reason}); {keeps}: configure that "
                    "timeout or use a device whose driver supports WDIOF_SETTIMEOUT", current) from None
            if error.errno == errno.EINVAL:
                raise WatchdogTimeoutRejected(
                    f"the watchdog {self.path} refused a timeout of {seconds} s ({reason}): it is outside the "
                    f"driver's range; {keeps}: configure a timeout the driver supports (see wdctl)",
                    current) from None
            raise WatchdogError(f"setting the timeout of the watchdog {self.path} failed ({reason})") from None

    def get_timeout(self) -> int:
        self._require_fd()
        try:
            return self._int_ioctl(WDIOC_GETTIMEOUT)
        except OSError as error:
            raise WatchdogError(f"the watchdog {self.path} cannot report its timeout "
                                f"({error.strerror or error})") from None

    def keepalive(self) -> None:
        fd = self._require_fd()
        try:
            if self._ping_by_write:
                self._write(fd, b"\0")
                return
            try:
                self._int_ioctl(WDIOC_KEEPALIVE)
            except OSError as error:
                if error.errno != errno.EOPNOTSUPP:
                    raise
                self._ping_by_write = True  # no WDIOF_KEEPALIVEPING: any write but 'V' pets it
                self._write(fd, b"\0")
        except OSError as error:
            raise WatchdogError(f"petting the watchdog {self.path} failed ({error.strerror or error}): it will "
                                "reset this node when its timeout passes") from None

    def close(self, magic: bool = True) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        failure: OSError | None = None
        if magic:
            try:
                self._write(fd, MAGIC_CLOSE)
            except OSError as error:
                failure = error
        try:
            self._close(fd)
        except OSError as error:
            failure = failure or error
        if failure is not None:
            raise WatchdogError(f"closing the watchdog {self.path} failed ({failure.strerror or failure}): it "
                                "stays armed and will reset this node when its timeout passes")

    def identity(self) -> str | None:
        return self._identity


# --- none ----------------------------------------------------------------------------------------------------------

class NullWatchdog(Watchdog):
    """No watchdog (``node.watchdog = "none"``): always open, every operation succeeds and protects nothing."""

    is_null = True

    def __init__(self) -> None:
        self._timeout = 0

    @property
    def name(self) -> str:
        return NONE

    @property
    def is_open(self) -> bool:
        return True

    def open(self) -> None:
        pass

    def set_timeout(self, seconds: int) -> int:
        _check_seconds(seconds)
        self._timeout = seconds
        return seconds

    def get_timeout(self) -> int:
        """The last timeout set (0 before any)."""
        return self._timeout

    def keepalive(self) -> None:
        pass

    def close(self, magic: bool = True) -> None:
        pass


# --- in memory -----------------------------------------------------------------------------------------------------

class FakeWatchdogDevice:
    """A watchdog device in memory with the Linux semantics, on an injected clock (tests never sleep).

    Opening arms it (a device left armed by a close without magic keeps its
    countdown); one opener at a time (``OSError(EBUSY)``, as the kernel answers);
    :meth:`keepalive`, any :meth:`write` and :meth:`set_timeout` restart the
    countdown; ``'V'`` written before :meth:`release` disarms it, unless
    ``nowayout``.  When the countdown reaches zero the device fires: ``fired``
    becomes true and ``on_fire`` runs once.  Time is ``clock()``, by default an
    internal clock moved by :meth:`advance`; with an external clock, move it and
    call :meth:`check` (every operation checks first, so a late pet is too late).
    Refusals are ``OSError`` with the kernel's errno, so drivers map them as on Linux.
    """

    def __init__(self, *, timeout: int = 60, clock: Clock | None = None, on_fire: Callable[[], None] | None = None,
                 min_timeout: int = 1, max_timeout: int = 65535, granularity: int = 1, nowayout: bool = False,
                 identity: str = "Fake Watchdog", name: str = "fake-watchdog") -> None:
        self._now = 0.0
        self._clock: Clock = clock if clock is not None else (lambda: self._now)
        self._external_clock = clock is not None
        self.timeout = timeout
        self.on_fire = on_fire
        self.min_timeout, self.max_timeout, self.granularity = min_timeout, max_timeout, granularity
        self.nowayout = nowayout
        self.identity, self.name = identity, name
        self.opened = False
        self.armed = False
        self.deadline: float | None = None
        self.fired_at: float | None = None
        self._expect_close = False
        self.pets = 0
        self.opens = 0

    def now(self) -> float:
        return self._clock()

    def advance(self, seconds: float) -> bool:
        """Move the internal clock forward and check; return whether the device has fired."""
        if self._external_clock:
            raise ValueError(f"{self.name} reads an external clock: move that clock and call check()")
        if seconds < 0:
            raise ValueError(f"time does not go backwards (advance({seconds}))")
        self._now += seconds
        return self.check()

    def check(self, now: float | None = None) -> bool:
        """Fire if the countdown has run out by ``now`` (default: the clock); return whether the device has fired."""
        now = self.now() if now is None else now
        if self.fired_at is None and self.armed and self.deadline is not None and now >= self.deadline:
            self.fired_at = self.deadline
            if self.on_fire is not None:
                self.on_fire()
        return self.fired_at is not None

    @property
    def fired(self) -> bool:
        """Whether the device has reset the node (checks the clock first)."""
        return self.check()

    def time_left(self) -> float | None:
        """Seconds until the device fires (``None`` when disarmed)."""
        if not self.armed or self.deadline is None:
            return None
        return max(0.0, self.deadline - self.now())

    def _ping(self) -> None:
        self.deadline = self.now() + self.timeout
        self.pets += 1

    def _require_open(self) -> None:
        self.check()
        if not self.opened:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    def open(self) -> None:
        self.check()
        if self.opened:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        self.opened = True
        self.opens += 1
        self._expect_close = False
        if not self.armed:
            self.armed = True
            self.deadline = self.now() + self.timeout

    def write(self, data: bytes) -> int:
        self._require_open()
        self._expect_close = MAGIC_CLOSE in data
        self._ping()
        return len(data)

    def keepalive(self) -> None:
        self._require_open()
        self._ping()

    def set_timeout(self, seconds: int) -> int:
        self._require_open()
        if not self.min_timeout <= seconds <= self.max_timeout:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        self.timeout = min(self.max_timeout, math.ceil(seconds / self.granularity) * self.granularity)
        self._ping()
        return self.timeout

    def get_timeout(self) -> int:
        self._require_open()
        return self.timeout

    def release(self) -> None:
        """The last close: disarm after a magic ``'V'`` (unless ``nowayout``), else one more ping and stay armed."""
        self._require_open()
        self.opened = False
        if self._expect_close and not self.nowayout:
            self.armed, self.deadline = False, None
        else:
            self._ping()
        self._expect_close = False


class FakeWatchdog(Watchdog):
    """The driver for a :class:`FakeWatchdogDevice`, with the same errors as :class:`LinuxWatchdog`."""

    def __init__(self, device: FakeWatchdogDevice) -> None:
        self.device = device
        self._open = False

    @property
    def name(self) -> str:
        return self.device.name

    @property
    def is_open(self) -> bool:
        return self._open

    def _require_open(self) -> None:
        if not self._open:
            raise ValueError(f"the watchdog {self.name} is not open: call open() first")

    def open(self) -> None:
        if self._open:
            return
        try:
            self.device.open()
        except OSError as error:
            raise _open_error(error, self.name) from None
        self._open = True

    def set_timeout(self, seconds: int) -> int:
        _check_seconds(seconds)
        self._require_open()
        try:
            return self.device.set_timeout(seconds)
        except OSError as error:
            raise WatchdogTimeoutRejected(
                f"the watchdog {self.name} refused a timeout of {seconds} s ({error.strerror}): it is outside "
                f"{self.device.min_timeout}..{self.device.max_timeout} s; it keeps {self.device.timeout} s",
                self.device.timeout) from None

    def get_timeout(self) -> int:
        self._require_open()
        return self.device.get_timeout()

    def keepalive(self) -> None:
        self._require_open()
        self.device.keepalive()

    def close(self, magic: bool = True) -> None:
        if not self._open:
            return
        self._open = False
        if magic:
            self.device.write(MAGIC_CLOSE)
        self.device.release()

    def identity(self) -> str | None:
        return self.device.identity


# --- configuration -------------------------------------------------------------------------------------------------

def watchdog_problem(spec: object) -> str | None:
    """What is wrong with a configured ``node.watchdog`` value, or ``None``; never opens the device."""
    usage = f'it must be "{NONE}" or the absolute path of a watchdog device under /dev, such as "{DEFAULT_DEVICE}"'
    if not isinstance(spec, str):
        return f"node.watchdog is {spec!r}, not a string: {usage}"
    if spec == NONE:
        return None
    if spec.strip().lower() == NONE:
        return f'node.watchdog is "{spec}": write "{NONE}" exactly (lower case, no spaces)'
    if not spec.startswith("/dev/") or os.path.normpath(spec) != spec or spec == "/dev/" or "\0" in spec:
        return f'node.watchdog is "{spec}": {usage}'
    return None


def open_watchdog(spec: str, *, timeout: int | None = None,
                  driver: Callable[[str], Watchdog] = LinuxWatchdog) -> Watchdog:
    """Open the watchdog a ``node.watchdog`` value names: ``"none"`` or a device path (``driver(path)``,
    :class:`LinuxWatchdog` unless a test passes another), and set ``timeout`` if given.

    Raises :class:`~wolfpack.errors.ConfigError` for a malformed value and the
    :class:`WatchdogError` family for a device that cannot be used (it is closed
    again, with the magic close, if setting the timeout fails)."""
    problem = watchdog_problem(spec)
    if problem is not None:
        raise ConfigError(problem)
    watchdog: Watchdog = NullWatchdog() if spec == NONE else driver(spec)
    watchdog.open()
    if timeout is not None:
        try:
            watchdog.set_timeout(timeout)
        except BaseException:
            watchdog.close(magic=True)
            raise
    return watchdog


# --- the daemon's pet policy ---------------------------------------------------------------------------------------

class WatchdogPetter:
    """Pets a watchdog only while the caller's lease is fresh, so a node that loses its lease is reset.

    The daemon calls :meth:`tick` on every timer tick (well within the watchdog
    timeout); :meth:`disarm` on a clean stop; :meth:`abandon` when it cannot stop its
    resources and the hardware must reset the node."""

    def __init__(self, watchdog: Watchdog, clock: Clock = time.monotonic) -> None:
        self.watchdog = watchdog
        self.clock = clock
        self.pets = 0
        self.skipped = 0
        self.last_pet: float | None = None

    def tick(self, lease_fresh: bool) -> bool:
        """Pet the watchdog if ``lease_fresh``; return whether it was petted."""
        if not lease_fresh:
            self.skipped += 1
            return False
        self.watchdog.keepalive()
        self.pets += 1
        self.last_pet = self.clock()
        return True

    def since_last_pet(self) -> float | None:
        """Seconds since the last pet (``None`` before the first)."""
        return None if self.last_pet is None else self.clock() - self.last_pet

    def disarm(self) -> None:
        """A clean stop: magic close, the watchdog no longer resets the node."""
        self.watchdog.close(magic=True)

    def abandon(self) -> None:
        """Close without magic: the watchdog stays armed and resets the node one timeout from now."""
        self.watchdog.close(magic=False)
