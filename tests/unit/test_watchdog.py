"""The watchdog layer: the ioctl numbers of <linux/watchdog.h>, the Linux driver against a fake kernel (fake
``ioctl`` and ``os.open/write/close``), the in-memory device's Linux semantics on a fake clock, the factory and the
configuration check, and the pet policy.  Nothing sleeps and nothing touches a real /dev/watchdog."""

from __future__ import annotations

import errno
import os
import struct
from typing import Any

import pytest

from wolfpack.errors import ConfigError, DeviceError, WolfpackError
from wolfpack.hw import watchdog as wd
from wolfpack.hw.watchdog import (
    WDIOC_GETSUPPORT,
    WDIOC_GETTIMEOUT,
    WDIOC_KEEPALIVE,
    WDIOC_SETOPTIONS,
    WDIOC_SETTIMEOUT,
    FakeWatchdog,
    FakeWatchdogDevice,
    LinuxWatchdog,
    NullWatchdog,
    Watchdog,
    WatchdogBusy,
    WatchdogError,
    WatchdogInfo,
    WatchdogPetter,
    WatchdogTimeoutRejected,
    WatchdogUnavailable,
    open_watchdog,
    watchdog_problem,
)

# --- the numbers ---------------------------------------------------------------------------------------------------


def test_ioctl_numbers_match_the_kernel_macros() -> None:
    # (dir << 30) | (size << 16) | ('W' << 8) | nr, with _IOC_READ = 2, _IOC_WRITE = 1
    assert WDIOC_GETSUPPORT == 0x80285700
    assert WDIOC_SETOPTIONS == 0x80045704
    assert WDIOC_KEEPALIVE == 0x80045705
    assert WDIOC_SETTIMEOUT == 0xC0045706
    assert WDIOC_GETTIMEOUT == 0x80045707
    assert wd.WDIOC_GETTIMELEFT == 0x8004570A
    assert wd._IOC(3, ord("W"), 6, 4) == WDIOC_SETTIMEOUT


def test_watchdog_info_is_40_bytes() -> None:
    import ctypes

    assert ctypes.sizeof(WatchdogInfo) == 40
    assert (WatchdogInfo.options.offset, WatchdogInfo.firmware_version.offset, WatchdogInfo.identity.offset) == (
        0, 4, 8)


def test_errors_belong_to_the_one_tree() -> None:
    for error in (WatchdogError, WatchdogUnavailable, WatchdogBusy, WatchdogTimeoutRejected):
        assert issubclass(error, DeviceError) and issubclass(error, WolfpackError)


# --- the Linux driver against a fake kernel ------------------------------------------------------------------------


class FakeKernel:
    """Plays the kernel behind one watchdog fd: records every call and writes answers back into the buffers."""

    FD = 42

    def __init__(self, *, timeout: int = 60, accept: tuple[int, int] = (1, 3600), rounding: int = 1,
                 open_errno: int | None = None, support_errno: int | None = None,
                 keepalive_errno: int | None = None, settimeout_errno: int | None = None,
                 identity: bytes = b"Software Watchdog", options: int = 0x8180) -> None:
        self.timeout, self.accept, self.rounding = timeout, accept, rounding
        self.open_errno, self.support_errno = open_errno, support_errno
        self.keepalive_errno, self.settimeout_errno = keepalive_errno, settimeout_errno
        self.identity, self.options = identity, options
        self.calls: list[tuple[Any, ...]] = []
        self.open_fds: set[int] = set()

    @staticmethod
    def _fail(code: int) -> OSError:
        return OSError(code, os.strerror(code))

    def os_open(self, path: str, flags: int) -> int:
        self.calls.append(("open", path, flags))
        if self.open_errno is not None:
            raise self._fail(self.open_errno)
        self.open_fds.add(self.FD)
        return self.FD

    def os_write(self, fd: int, data: bytes) -> int:
        assert fd in self.open_fds
        self.calls.append(("write", fd, bytes(data)))
        return len(data)

    def os_close(self, fd: int) -> None:
        assert fd in self.open_fds
        self.open_fds.remove(fd)
        self.calls.append(("close", fd))

    def ioctl(self, fd: int, request: int, argument: Any) -> int:
        assert fd in self.open_fds
        buffer = memoryview(argument).cast("B")  # whatever the driver passes, the kernel sees bytes
        value = struct.unpack_from("i", buffer)[0] if buffer.nbytes == 4 else None
        self.calls.append(("ioctl", fd, request, value))
        if request == WDIOC_GETSUPPORT:
            assert buffer.nbytes == 40
            if self.support_errno is not None:
                raise self._fail(self.support_errno)
            struct.pack_into("II32s", buffer, 0, self.options, 7, self.identity)
        elif request == WDIOC_KEEPALIVE:
            if self.keepalive_errno is not None:
                raise self._fail(self.keepalive_errno)
        elif request == WDIOC_SETTIMEOUT:
            assert value is not None
            if self.settimeout_errno is not None:
                raise self._fail(self.settimeout_errno)
            if not self.accept[0] <= value <= self.accept[1]:
                raise self._fail(errno.EINVAL)
            self.timeout = -(-value // self.rounding) * self.rounding
            struct.pack_into("i", buffer, 0, self.timeout)
        elif request == WDIOC_GETTIMEOUT:
            struct.pack_into("i", buffer, 0, self.timeout)
        else:
            raise self._fail(errno.ENOTTY)
        return 0

    def driver(self, path: str = "/dev/watchdog") -> LinuxWatchdog:
        return LinuxWatchdog(path, ioctl=self.ioctl, os_open=self.os_open, os_write=self.os_write,
                             os_close=self.os_close)

    def requests(self) -> list[int]:
        return [call[2] for call in self.calls if call[0] == "ioctl"]


def test_open_is_write_only_and_reads_the_identity() -> None:
    kernel = FakeKernel()
    dog = kernel.driver("/dev/watchdog0")
    assert not dog.is_open and dog.name == "/dev/watchdog0"
    dog.open()
    assert dog.is_open
    assert kernel.calls[0] == ("open", "/dev/watchdog0", os.O_WRONLY)
    assert kernel.requests() == [WDIOC_GETSUPPORT]
    assert dog.identity() == "Software Watchdog"
    assert dog.options == 0x8180 and dog.firmware_version == 7
    dog.open()  # already open: no second open(2)
    assert [call[0] for call in kernel.calls].count("open") == 1


def test_set_timeout_sends_the_value_and_returns_what_the_kernel_wrote_back() -> None:
    kernel = FakeKernel(rounding=4)
    dog = kernel.driver()
    dog.open()
    assert dog.set_timeout(10) == 12  # the "hardware" rounds up to 4 s steps
    assert kernel.calls[-1] == ("ioctl", FakeKernel.FD, WDIOC_SETTIMEOUT, 10)
    assert dog.get_timeout() == 12
    assert kernel.calls[-1][2] == WDIOC_GETTIMEOUT


def test_keepalive_sends_wdioc_keepalive() -> None:
    kernel = FakeKernel()
    dog = kernel.driver()
    dog.open()
    dog.keepalive()
    dog.keepalive()
    assert kernel.requests() == [WDIOC_GETSUPPORT, WDIOC_KEEPALIVE, WDIOC_KEEPALIVE]
    assert not [call for call in kernel.calls if call[0] == "write"]


def test_keepalive_falls_back_to_a_write_without_keepaliveping() -> None:
    kernel = FakeKernel(keepalive_errno=errno.EOPNOTSUPP)
    dog = kernel.driver()
    dog.open()
    dog.keepalive()
    dog.keepalive()
    writes = [call[2] for call in kernel.calls if call[0] == "write"]
    assert writes == [b"\0", b"\0"] and b"V" not in b"".join(writes)
    assert kernel.requests().count(WDIOC_KEEPALIVE) == 1  # learnt once, then only writes


def test_keepalive_failure_is_a_watchdog_error() -> None:
    kernel = FakeKernel(keepalive_errno=errno.EIO)
    dog = kernel.driver()
    dog.open()
    with pytest.raises(WatchdogError, match="petting the watchdog /dev/watchdog failed"):
        dog.keepalive()


def test_magic_close_writes_v_then_closes() -> None:
    kernel = FakeKernel()
    dog = kernel.driver()
    dog.open()
    dog.close()
    assert kernel.calls[-2:] == [("write", FakeKernel.FD, b"V"), ("close", FakeKernel.FD)]
    assert not dog.is_open and not kernel.open_fds
    dog.close()  # closing twice does nothing
    assert kernel.calls[-1] == ("close", FakeKernel.FD) and len(kernel.calls) == 4


def test_close_without_magic_writes_nothing() -> None:
    kernel = FakeKernel()
    dog = kernel.driver()
    dog.open()
    dog.close(magic=False)
    assert kernel.calls[-1] == ("close", FakeKernel.FD)
    assert not [call for call in kernel.calls if call[0] == "write"]


def test_context_manager_opens_and_magic_closes() -> None:
    kernel = FakeKernel()
    with kernel.driver() as dog:
        assert dog.is_open
        dog.keepalive()
    assert kernel.calls[-2:] == [("write", FakeKernel.FD, b"V"), ("close", FakeKernel.FD)]


def test_calls_on_a_closed_driver_are_refused() -> None:
    dog = FakeKernel().driver()
    for call in (dog.keepalive, dog.get_timeout, lambda: dog.set_timeout(5)):
        with pytest.raises(ValueError, match="not open"):
            call()


@pytest.mark.parametrize("code, error, words", [
    (errno.ENOENT, WatchdogUnavailable, 'no watchdog device at /dev/watchdog .*softdog.*node.watchdog = "none"'),
    (errno.ENODEV, WatchdogUnavailable, "no watchdog device at /dev/watchdog"),
    (errno.EACCES, WatchdogUnavailable, "permission denied opening the watchdog /dev/watchdog.*root"),
    (errno.EBUSY, WatchdogBusy, "/dev/watchdog is busy.*another process holds it.*systemd.*wdmd"),
    (errno.EIO, WatchdogError, "cannot open the watchdog /dev/watchdog"),
])
def test_open_errors_say_what_to_do(code: int, error: type[WatchdogError], words: str) -> None:
    kernel = FakeKernel(open_errno=code)
    dog = kernel.driver()
    with pytest.raises(error, match=words) as raised:
        dog.open()
    assert type(raised.value) is error
    assert not dog.is_open


def test_a_device_that_is_not_a_watchdog_is_refused_and_closed() -> None:
    kernel = FakeKernel(support_errno=errno.ENOTTY)
    dog = kernel.driver("/dev/null")
    with pytest.raises(WatchdogUnavailable, match="/dev/null is not a watchdog device"):
        dog.open()
    assert not dog.is_open and not kernel.open_fds


def test_the_real_ioctl_on_dev_null_is_not_a_watchdog() -> None:
    # The real fcntl.ioctl with the driver's ctypes buffer; /dev/null answers ENOTTY and is never armed.
    with pytest.raises(WatchdogUnavailable, match="not a watchdog"):
        LinuxWatchdog(os.devnull).open()


def test_a_driver_without_getsupport_still_opens() -> None:
    kernel = FakeKernel(support_errno=errno.EOPNOTSUPP)
    dog = kernel.driver()
    dog.open()
    assert dog.is_open and dog.identity() is None and dog.options is None


def test_a_rejected_timeout_reports_what_the_device_keeps() -> None:
    kernel = FakeKernel(timeout=60, accept=(1, 30))
    dog = kernel.driver()
    dog.open()
    with pytest.raises(WatchdogTimeoutRejected, match=r"refused a timeout of 120 s.*it keeps 60 s") as raised:
        dog.set_timeout(120)
    assert raised.value.accepted == 60
    assert dog.is_open  # still armed with its old timeout: the caller decides


def test_a_fixed_timeout_device_reports_its_timeout() -> None:
    kernel = FakeKernel(timeout=30, settimeout_errno=errno.EOPNOTSUPP)
    dog = kernel.driver()
    dog.open()
    with pytest.raises(WatchdogTimeoutRejected, match=r"cannot change its timeout.*it keeps 30 s") as raised:
        dog.set_timeout(10)
    assert raised.value.accepted == 30


@pytest.mark.parametrize("seconds", [0, -1, True, 2**31])
def test_nonsense_timeouts_never_reach_the_device(seconds: int) -> None:
    kernel = FakeKernel()
    dog = kernel.driver()
    dog.open()
    with pytest.raises(ValueError, match="whole number of seconds"):
        dog.set_timeout(seconds)
    assert WDIOC_SETTIMEOUT not in kernel.requests()


def test_a_failed_magic_write_still_closes_and_says_it_stays_armed() -> None:
    kernel = FakeKernel()

    def failing_write(fd: int, data: bytes) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    dog = LinuxWatchdog("/dev/watchdog", ioctl=kernel.ioctl, os_open=kernel.os_open, os_write=failing_write,
                        os_close=kernel.os_close)
    dog.open()
    with pytest.raises(WatchdogError, match="stays armed"):
        dog.close()
    assert not dog.is_open and not kernel.open_fds


# --- the in-memory device ------------------------------------------------------------------------------------------


def fake(timeout: int = 10, **options: Any) -> tuple[FakeWatchdogDevice, FakeWatchdog]:
    device = FakeWatchdogDevice(timeout=timeout, **options)
    return device, FakeWatchdog(device)


def test_opening_arms_and_it_fires_after_the_timeout_not_before() -> None:
    fires: list[float] = []
    device, dog = fake(10)
    device.on_fire = lambda: fires.append(device.now())
    assert not device.armed
    device.advance(100)  # a closed, never-opened device never fires
    assert not device.fired
    dog.open()
    assert device.armed and device.time_left() == 10
    device.advance(9.5)
    assert not device.fired and fires == []
    device.advance(0.5)
    assert device.fired and device.fired_at == 110
    device.advance(50)
    assert fires == [110]  # on_fire runs once


def test_keepalive_postpones() -> None:
    device, dog = fake(10)
    dog.open()
    for _ in range(5):
        device.advance(8)
        dog.keepalive()
    assert not device.fired and device.pets == 5
    device.advance(9)
    assert not device.fired
    device.advance(1)
    assert device.fired


def test_a_late_keepalive_does_not_undo_a_reset() -> None:
    device, dog = fake(10)
    dog.open()
    device._now = 11.0  # time passed with nobody looking
    dog.keepalive()
    assert device.fired and device.fired_at == 10


def test_magic_close_disarms() -> None:
    device, dog = fake(10)
    dog.open()
    device.advance(5)
    dog.close()
    assert not device.armed
    device.advance(1000)
    assert not device.fired


def test_close_without_magic_keeps_it_armed_and_it_fires() -> None:
    device, dog = fake(10)
    dog.open()
    device.advance(5)
    dog.close(magic=False)
    assert device.armed and not dog.is_open
    device.advance(9)  # the release pinged once, like the kernel's "watchdog did not stop!"
    assert not device.fired
    device.advance(1)
    assert device.fired


def test_reopening_an_armed_device_does_not_restart_its_countdown() -> None:
    device, dog = fake(10)
    dog.open()
    dog.close(magic=False)
    device.advance(6)
    dog.open()
    device.advance(4)
    assert device.fired


def test_nowayout_ignores_the_magic_close() -> None:
    device, dog = fake(10, nowayout=True)
    dog.open()
    dog.close()
    device.advance(10)
    assert device.fired


def test_a_second_open_is_busy() -> None:
    device, first = fake(10)
    second = FakeWatchdog(device)
    first.open()
    with pytest.raises(WatchdogBusy, match="fake-watchdog is busy"):
        second.open()
    assert not second.is_open
    first.close()
    second.open()
    assert second.is_open and device.opens == 2


def test_the_fake_set_timeout_restarts_rounds_and_rejects() -> None:
    device, dog = fake(10, max_timeout=60, granularity=4)
    dog.open()
    device.advance(8)
    assert dog.set_timeout(13) == 16 and dog.get_timeout() == 16
    device.advance(15)
    assert not device.fired  # setting the timeout pinged at t=8, so it fires at 24
    device.advance(1)
    assert device.fired
    with pytest.raises(WatchdogTimeoutRejected, match=r"refused a timeout of 61 s.*keeps 16 s") as raised:
        dog.set_timeout(61)
    assert raised.value.accepted == 16


def test_an_external_clock_and_check() -> None:
    now = [100.0]
    device = FakeWatchdogDevice(timeout=5, clock=lambda: now[0])
    FakeWatchdog(device).open()
    with pytest.raises(ValueError, match="external clock"):
        device.advance(1)
    assert not device.check(104.9)
    now[0] = 105.0
    assert device.check() and device.fired_at == 105.0


def test_a_writes_other_than_v_cancel_the_magic() -> None:
    device, dog = fake(10)
    dog.open()
    device.write(b"V")
    device.write(b"x")
    device.release()
    assert device.armed


# --- none, the factory, the configuration check --------------------------------------------------------------------


def test_null_watchdog_is_always_open_and_does_nothing() -> None:
    dog = NullWatchdog()
    assert dog.is_open and dog.is_null and dog.name == "none" and dog.identity() is None
    dog.open()
    assert dog.set_timeout(30) == 30 and dog.get_timeout() == 30
    dog.keepalive()
    dog.close()
    dog.close(magic=False)
    assert dog.is_open
    assert not LinuxWatchdog.is_null and not FakeWatchdog.is_null


@pytest.mark.parametrize("spec", ["none", "/dev/watchdog", "/dev/watchdog0", "/dev/watchdog1"])
def test_good_specs(spec: str) -> None:
    assert watchdog_problem(spec) is None


@pytest.mark.parametrize("spec, words", [
    ("", 'must be "none" or the absolute path'),
    ("None", 'write "none" exactly'),
    (" none", 'write "none" exactly'),
    ("watchdog", "under /dev"),
    ("dev/watchdog", "under /dev"),
    ("/tmp/watchdog", "under /dev"),
    ("/dev/", "under /dev"),
    ("/dev/../etc/passwd", "under /dev"),
    ("/dev//watchdog", "under /dev"),
    ("/dev/watchdog/", "under /dev"),
    (0, "not a string"),
    (None, "not a string"),
])
def test_bad_specs(spec: object, words: str) -> None:
    problem = watchdog_problem(spec)
    assert problem is not None and words in problem and "node.watchdog" in problem


def test_open_watchdog_none() -> None:
    dog = open_watchdog("none", timeout=30)
    assert isinstance(dog, NullWatchdog) and dog.get_timeout() == 30


def test_open_watchdog_path_opens_and_sets_the_timeout() -> None:
    kernel = FakeKernel()
    dog = open_watchdog("/dev/watchdog1", timeout=15, driver=kernel.driver)
    assert isinstance(dog, LinuxWatchdog) and dog.is_open and dog.name == "/dev/watchdog1"
    assert kernel.calls[0][:2] == ("open", "/dev/watchdog1")
    assert ("ioctl", FakeKernel.FD, WDIOC_SETTIMEOUT, 15) in kernel.calls


def test_open_watchdog_defaults_to_the_linux_driver() -> None:
    assert open_watchdog.__kwdefaults__ is not None
    assert open_watchdog.__kwdefaults__["driver"] is LinuxWatchdog


def test_open_watchdog_disarms_when_the_timeout_is_refused() -> None:
    kernel = FakeKernel(accept=(1, 30))
    with pytest.raises(WatchdogTimeoutRejected):
        open_watchdog("/dev/watchdog", timeout=120, driver=kernel.driver)
    assert kernel.calls[-2:] == [("write", FakeKernel.FD, b"V"), ("close", FakeKernel.FD)]


def test_open_watchdog_refuses_a_bad_spec_without_opening() -> None:
    opened: list[str] = []

    def driver(path: str) -> Watchdog:
        opened.append(path)
        return NullWatchdog()

    with pytest.raises(ConfigError, match="under /dev"):
        open_watchdog("/etc/watchdog", driver=driver)
    assert opened == []


# --- the pet policy ------------------------------------------------------------------------------------------------


def test_the_petter_pets_only_while_the_lease_is_fresh() -> None:
    device, dog = fake(10)
    dog.open()
    petter = WatchdogPetter(dog, clock=device.now)
    for _ in range(30):  # 30 s of fresh lease, a tick a second
        device.advance(1)
        assert petter.tick(lease_fresh=True)
    assert not device.fired and petter.pets == 30 and petter.skipped == 0 and petter.last_pet == 30
    for _ in range(9):  # the lease goes stale: no more pets
        device.advance(1)
        assert not petter.tick(lease_fresh=False)
    assert not device.fired and petter.skipped == 9 and petter.since_last_pet() == 9
    device.advance(1)
    petter.tick(lease_fresh=False)
    assert device.fired and device.fired_at == 40 and petter.pets == 30


def test_a_fresh_lease_again_in_time_saves_the_node() -> None:
    device, dog = fake(10)
    dog.open()
    petter = WatchdogPetter(dog, clock=device.now)
    device.advance(9)
    petter.tick(lease_fresh=False)
    petter.tick(lease_fresh=True)
    device.advance(9)
    assert not device.fired


def test_petter_disarm_and_abandon() -> None:
    device, dog = fake(10)
    dog.open()
    WatchdogPetter(dog, clock=device.now).disarm()
    device.advance(100)
    assert not device.fired and not dog.is_open

    device, dog = fake(10)
    dog.open()
    WatchdogPetter(dog, clock=device.now).abandon()
    device.advance(10)
    assert device.fired and not dog.is_open
