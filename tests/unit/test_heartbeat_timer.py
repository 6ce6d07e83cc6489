"""The heartbeat timer: the C engine (``_hbtimer``) and its pure-Python twin run through the same tests.

Real UDP on 127.0.0.1 with ports from bind(0), a 20 ms period and a threshold
of 8 periods.  Timing is only ever asserted with generous multiples of the
period (the machine is shared): the point is behaviour, not speed.

Under CI (``CI`` set) a missing C extension is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from wolfpack.errors import ConfigError
from wolfpack.runtime.heartbeat import BaseHeartbeatTimer, CHeartbeatTimer, PyHeartbeatTimer, _pytimer, _wire
from wolfpack.runtime.heartbeat._timer import STATS_KEYS
from wolfpack.runtime.monitor.lease import LeasePage

try:
    from wolfpack.runtime.heartbeat import _hbtimer
except ImportError:
    _hbtimer = None  # type: ignore[assignment]

PERIOD_MS = 20
PERIOD_S = PERIOD_MS / 1000
THRESHOLD = 8
BUSY_PERIOD_MS = 50  # the busy-loop test: see there
KEY = b"the test cluster's shared key"
LOCAL = ("127.0.0.1", 0)
EVENT_TIMEOUT_S = 5.0  # generous: only a broken timer takes this long

Spawn = Callable[..., BaseHeartbeatTimer]
Address = tuple[str, int]


def require_c_extension() -> None:
    if _hbtimer is None:
        if os.environ.get("CI"):
            pytest.fail("the C extension wolfpack.runtime.heartbeat._hbtimer did not build (CI requires it): "
                        "run `pip install -e .` and read the compiler errors")
        pytest.skip("the C extension _hbtimer is not built (this would fail under CI)")


@pytest.fixture(params=["c", "python"])
def impl(request: pytest.FixtureRequest) -> type[BaseHeartbeatTimer]:
    if request.param == "c":
        require_c_extension()
        assert CHeartbeatTimer is not None
        return CHeartbeatTimer
    return PyHeartbeatTimer


@pytest.fixture(params=["c", "python"])
def engines(request: pytest.FixtureRequest) -> ModuleType:
    """The engine module itself, for its codec functions."""
    if request.param == "c":
        require_c_extension()
        assert _hbtimer is not None
        return _hbtimer
    return _pytimer


@pytest.fixture
def spawn(impl: type[BaseHeartbeatTimer]) -> Iterator[Spawn]:
    """Make timers of the implementation under test (or of ``cls``); all closed at the end."""
    made: list[BaseHeartbeatTimer] = []

    def make(node_id: int, networks: int | list[Address] = 1, peers: dict[int, list[Address]] | None = None,
             cls: type[BaseHeartbeatTimer] | None = None, period_ms: int = PERIOD_MS,
             lease: Path | None = None) -> BaseHeartbeatTimer:
        nets = [LOCAL] * networks if isinstance(networks, int) else networks
        timer = (cls or impl)(node_id, KEY, nets, peers, period_ms=period_ms, missed_threshold=THRESHOLD, lease=lease)
        made.append(timer)
        return timer

    yield make
    for timer in made:
        timer.close()


def wire(*timers: BaseHeartbeatTimer) -> None:
    """Make every timer a peer of every other, then start them all."""
    for timer in timers:
        timer.set_peers({other.node_id: other.addresses() for other in timers if other is not timer})
    for timer in timers:
        timer.start()


def wait_until(condition: Callable[[], bool], timeout: float = EVENT_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def all_seen(*timers: BaseHeartbeatTimer) -> bool:
    return all(t is not None for timer in timers for seen in timer.last_seen().values() for t in seen)


def next_events(timer: BaseHeartbeatTimer, timeout: float = EVENT_TIMEOUT_S) -> list[tuple[str, int, int]]:
    """Wait (on the event fd, as the loop would) for the next batch of events."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([timer], [], [], left)
        if readable and (events := timer.read_events()):
            return events
    return []


def quiet_for(periods: int) -> None:
    time.sleep(periods * PERIOD_S)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(LOCAL)
        return int(probe.getsockname()[1])


def send_each(datagrams: list[bytes], to: tuple[str, int]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for datagram in datagrams:
            out.sendto(datagram, to)


class Flood:
    """Sends datagrams from a list, round and round, to an address every 2 ms until stopped."""

    def __init__(self, datagrams: Callable[[int], bytes], to: tuple[str, int]) -> None:
        self._make, self._to = datagrams, to
        self._stop = threading.Event()
        self.count = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            while not self._stop.wait(0.002):
                out.sendto(self._make(self.count), self._to)
                self.count += 1

    def __enter__(self) -> Flood:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- the build ----------------------------------------------------------------------------------------------------


def test_c_extension_built_under_ci() -> None:
    """CI sets CI=true: there a missing extension fails the run instead of silently testing only the twin."""
    require_c_extension()
    assert CHeartbeatTimer is not None and CHeartbeatTimer.implementation == "c"


@pytest.mark.parametrize(("variable", "expected"), [(None, "c"), ("python", "python")])
def test_environment_variable_chooses_the_implementation(variable: str | None, expected: str) -> None:
    if expected == "c":
        require_c_extension()
    env = {k: v for k, v in os.environ.items() if k != "WOLFPACK_HEARTBEAT"}
    if variable is not None:
        env["WOLFPACK_HEARTBEAT"] = variable
    probe = "from wolfpack.runtime.heartbeat import HeartbeatTimer; print(HeartbeatTimer.implementation)"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


# -- the codec ----------------------------------------------------------------------------------------------------

# RFC 4231 test cases 1, 2, 3, 4, 6, 7: (key, data, HMAC-SHA256)
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger than block-size data. "
     b"The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]


@pytest.mark.parametrize(("key", "data", "expected"), RFC4231, ids=[f"case{n}" for n in (1, 2, 3, 4, 6, 7)])
def test_hmac_sha256_known_vectors(engines: ModuleType, key: bytes, data: bytes, expected: str) -> None:
    assert engines.hmac_sha256(key, data).hex() == expected


def test_sha256_and_hmac_agree_with_the_standard_library(engines: ModuleType) -> None:
    assert engines.sha256(b"abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert engines.sha256(b"a" * 1_000_000).hex() == hashlib.sha256(b"a" * 1_000_000).hexdigest()
    for length in (0, 1, 55, 56, 63, 64, 65, 127, 128, 129, 1000):  # every padding boundary
        data = bytes((i * 7 + length) % 256 for i in range(length))
        assert engines.sha256(data) == hashlib.sha256(data).digest(), length
        assert engines.hmac_sha256(data, data[::-1]) == hmac.new(data, data[::-1], "sha256").digest(), length


def test_datagrams_are_byte_identical_in_c_and_python() -> None:
    require_c_extension()
    assert _hbtimer is not None
    mac_key = _wire.derive_mac_key(KEY)
    ages = [k * 1000 for k in range(64)]
    ages[63] = _wire.AGE_NEVER
    for node, incarnation, seq, epoch, members in [(0, 0, 0, 0, 0), (1, 2**64 - 1, 1, 7, 0b101),
                                                   (65535, 0x0123456789ABCDEF, 2**63 + 5, 2**64 - 1, 2**64 - 1)]:
        datagram = _hbtimer.encode(mac_key, node, incarnation, seq, epoch, members, ages)
        assert datagram == _pytimer.encode(mac_key, node, incarnation, seq, epoch, members, ages)
        assert len(datagram) == _hbtimer.DATAGRAM_LEN == _wire.DATAGRAM_LEN == 183
        assert datagram[:5] == b"WPHB\x03" and datagram[23:31] == epoch.to_bytes(8, "big")
        assert datagram[31:39] == members.to_bytes(8, "big") and datagram[39 + 2 * 5:41 + 2 * 5] == b"\x13\x88"
        assert (_hbtimer.decode(mac_key, datagram) == _pytimer.decode(mac_key, datagram)
                == (node, incarnation, seq, epoch, members, tuple(ages)))
    assert _hbtimer.encode(mac_key, 1, 2, 3, 4) == _pytimer.encode(mac_key, 1, 2, 3, 4)  # no members, never heard


def test_decode_refuses_every_altered_byte_and_a_wrong_key(engines: ModuleType) -> None:
    mac_key = _wire.derive_mac_key(KEY)
    datagram = engines.encode(mac_key, 3, 77, 9, 4, 6)
    assert engines.decode(mac_key, datagram) == (3, 77, 9, 4, 6, (_wire.AGE_NEVER,) * 64)
    for index in range(len(datagram)):
        altered = bytearray(datagram)
        altered[index] ^= 0x01
        assert engines.decode(mac_key, bytes(altered)) is None, index
    assert engines.decode(_wire.derive_mac_key(b"another key"), datagram) is None
    assert engines.decode(mac_key, datagram[:-1]) is None
    assert engines.decode(mac_key, datagram + b"\0") is None
    with pytest.raises(ValueError):
        engines.encode(mac_key, 3, 77, 9, 4, 6, [0] * 63)


# -- configuration -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "message"), [
    ({"networks": [("not-an-address", 0)]}, "not a numeric IP address"),
    ({"networks": [("localhost", 0)]}, "not a numeric IP address"),
    ({"networks": [("127.0.0.1", 70000)]}, "port 70000"),
    ({"networks": []}, "no networks"),
    ({"networks": [("192.0.2.1", 0)]}, "cannot bind"),  # TEST-NET: not an address of this host
    ({"missed_threshold": 0}, "missed_threshold is 0"),
    ({"period_ms": 0}, "period_ms is 0"),
    ({"key": b""}, "cluster key is empty"),
    ({"node_id": 70000}, "node id 70000"),
    ({"peers": {2: [("127.0.0.1", 9), ("127.0.0.1", 9)]}}, "exactly one (host, port) per network"),
    ({"peers": {2: [("::1", 9)]}}, "same IP version"),
    ({"peers": {2: [("127.0.0.1", 0)]}}, "port 0"),
    ({"peers": {1: [("127.0.0.1", 9)]}}, "this node's own id"),
])
def test_configuration_errors_say_what_to_do(
    impl: type[BaseHeartbeatTimer], change: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"node_id": 1, "key": KEY, "networks": [LOCAL], "peers": None, "period_ms": PERIOD_MS,
                  "missed_threshold": THRESHOLD}
    args.update(change)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        impl(**args).close()


def test_a_port_in_use_is_a_config_error(impl: type[BaseHeartbeatTimer]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(LOCAL)
        with pytest.raises(ConfigError, match="no other process holds"):
            impl(1, KEY, [holder.getsockname()])


def test_lifecycle(spawn: Spawn) -> None:
    timer = spawn(1)
    assert timer.last_seen() == {} and timer.read_events() == [] and set(timer.stats()) == set(STATS_KEYS)
    timer.set_peers({2: [("127.0.0.1", closed_port())]})
    assert timer.last_seen() == {2: [None]}
    timer.start()
    assert timer.incarnation != 0
    with pytest.raises(RuntimeError, match="peers are fixed"):
        timer.set_peers({})
    with pytest.raises(RuntimeError, match="create a new HeartbeatTimer"):
        timer.start()
    assert wait_until(lambda: timer.stats()["sent"] >= 2)
    assert list(timer.stats()) == list(STATS_KEYS)  # the same keys, in the same order, for both engines
    timer.stop()
    timer.stop()
    sent = timer.stats()["sent"]
    quiet_for(3)
    assert timer.stats()["sent"] == sent, "a stopped timer sent heartbeats"
    assert timer.addresses()[0][1] != 0
    timer.fileno()  # still open after stop, for the last events
    timer.close()
    timer.close()
    with pytest.raises(ValueError, match="closed"):
        timer.fileno()


# -- behaviour ----------------------------------------------------------------------------------------------------


def test_timers_see_each_other_and_raise_no_suspicion(spawn: Spawn) -> None:
    timers = [spawn(node, networks=2) for node in (1, 2, 3)]
    wire(*timers)
    assert wait_until(lambda: all_seen(*timers)), [t.last_seen() for t in timers]
    quiet_for(2 * THRESHOLD)
    for timer in timers:
        stats = timer.stats()
        assert timer.read_events() == []
        assert set(timer.last_seen()) == {1, 2, 3} - {timer.node_id}
        assert stats["received"] > 0 and stats["sent"] > 0
        assert stats["rejected"] == stats["send_errors"] == stats["thread_errno"] == 0, stats


def test_a_stopped_peer_is_suspected_once_after_about_the_threshold(spawn: Spawn) -> None:
    timers = [spawn(node) for node in (1, 2, 3)]
    wire(*timers)
    assert wait_until(lambda: all_seen(*timers))
    stopped_at = time.monotonic()
    timers[2].stop()
    for timer in timers[:2]:
        assert next_events(timer) == [("suspect", 3, 0)]
    took = time.monotonic() - stopped_at
    assert took >= THRESHOLD * PERIOD_S / 2, f"suspected after {took:.3f} s, before the threshold"
    quiet_for(THRESHOLD)
    assert timers[0].read_events() == timers[1].read_events() == [], "a transition was signalled twice"


def test_a_restarted_peer_is_back(spawn: Spawn) -> None:
    one, two = spawn(1), spawn(2)
    wire(one, two)
    assert wait_until(lambda: all_seen(one, two))
    two.stop()
    assert next_events(one) == [("suspect", 2, 0)]
    again = spawn(2, networks=two.addresses(), peers={1: one.addresses()})
    again.start()
    assert again.incarnation != two.incarnation
    assert next_events(one) == [("back", 2, 0)]
    quiet_for(THRESHOLD)
    assert one.read_events() == [] and again.read_events() == []
    assert one.stats()["rejected"] == 0


def test_losing_one_network_is_no_suspicion(spawn: Spawn) -> None:
    one, two = spawn(1, networks=2), spawn(2, networks=2)
    one.set_peers({2: two.addresses()})
    two.set_peers({1: [one.addresses()[0], ("127.0.0.1", closed_port())]})  # two's heartbeats to one on net 1 are lost
    one.start()
    two.start()
    assert wait_until(lambda: all_seen(two) and one.last_seen()[2][0] is not None)
    quiet_for(3 * THRESHOLD)
    assert one.read_events() == two.read_events() == []
    assert one.last_seen()[2][1] is None, "one heard two on the network that was cut"
    heard = one.last_seen()[2][0]
    assert heard is not None and time.monotonic_ns() - heard < 1_000_000_000


def test_forged_heartbeats_do_not_keep_a_dead_peer_alive(spawn: Spawn) -> None:
    one, two = spawn(1), spawn(2)
    wire(one, two)
    assert wait_until(lambda: all_seen(one))
    incarnation = two.incarnation
    two.stop()
    wrong_key = _wire.derive_mac_key(b"not the cluster key")
    # the right sender, incarnation and ever higher sequence numbers: only the MAC is wrong
    with Flood(lambda n: _wire.encode(wrong_key, 2, incarnation, 2**40 + n, 0), one.addresses()[0]) as flood:
        assert next_events(one) == [("suspect", 2, 0)]
        quiet_for(THRESHOLD)
        assert one.read_events() == [], "a forged heartbeat brought the peer back"
    assert flood.count > 0
    assert one.stats()["rejected_mac"] > 0


def test_a_peer_at_a_newer_epoch_is_reported_ahead_once_per_installed_epoch(spawn: Spawn) -> None:
    one, two = spawn(1), spawn(2)
    one.set_epoch(3, [1, 2])  # before start: the engine takes it
    wire(one, two)
    assert next_events(two) == [("ahead", 1, 3)]
    quiet_for(THRESHOLD)
    assert two.read_events() == [], "a peer ahead was reported twice for one installed epoch"
    two.set_epoch(3, [1, 2])  # caught up: nothing to report, and one hears nobody ahead of it
    quiet_for(THRESHOLD)
    assert two.read_events() == [] and one.read_events() == []
    assert (one.epoch, two.epoch) == (3, 3)
    one.set_epoch(5, [1, 2])  # while running
    assert next_events(two) == [("ahead", 1, 5)]
    two.set_epoch(4, [1, 2])  # a newer epoch here, still behind one: reported again
    assert next_events(two) == [("ahead", 1, 5)]
    assert two.epochs() == {1: 5} and one.epochs() == {2: 4}
    assert one.read_events() == []
    with pytest.raises(ValueError, match="epoch"):
        one.set_epoch(-1)


def test_a_new_epoch_is_announced_at_once_out_of_turn(spawn: Spawn) -> None:
    """set_epoch while running sends a round at once: with a 60 s period no regular tick falls between the first
    rounds and the end of the test, so the peer can only hear the new epoch from the round out of turn (a node
    left out of the membership halts within a network delay of the install)."""
    one, two = spawn(1, period_ms=60_000), spawn(2, period_ms=60_000)
    wire(one, two)
    assert wait_until(lambda: all_seen(one, two))
    ticks = one.stats()["ticks"]
    one.set_epoch(7, [1, 2])
    assert next_events(two) == [("ahead", 1, 7)]
    # the engine counts the round after it has sent it: the peer may have the event first
    assert wait_until(lambda: one.stats()["extra_rounds"] == 1), "the round out of turn was not counted"
    assert one.stats()["ticks"] == ticks, "the extra round counted as a tick"
    one.set_epoch(7, [1, 2])  # the same epoch again: nothing new to announce
    assert one.stats()["extra_rounds"] == 1


def test_each_heartbeat_says_when_its_sender_last_heard_the_receiver(spawn: Spawn) -> None:
    """The ages in a heartbeat: the lease of the receiver rests on peers that say they heard it lately, measured on
    the sender's clock as a duration (no common clock), turned back into the receiver's clock on arrival."""
    one, two = spawn(1), spawn(2)
    wire(one, two)
    assert wait_until(lambda: all_seen(one, two))
    assert wait_until(lambda: one.vouches()[2][0] is not None)
    at, epoch, members = one.vouches()[2]
    assert at is not None and 0 <= time.monotonic_ns() - at < (2 * PERIOD_MS + 200) * 1_000_000
    assert (epoch, members) == (0, frozenset())
    two.set_epoch(4, [1, 2])
    assert wait_until(lambda: one.vouches()[2][1:] == (4, frozenset({1, 2})))
    two.stop()  # node 2 stops: what it last said stands, and grows old
    last = one.vouches()[2][0]
    quiet_for(3)
    assert one.vouches()[2][0] == last


def test_a_newer_membership_without_this_node_revokes_its_lease_from_the_heartbeat_thread(
        spawn: Spawn, tmp_path: Path) -> None:
    """Node 2 installs epoch 5 with nodes 0 and 2: node 1's heartbeat thread revokes node 1's lease at once (the
    monitors then stop its resources without waiting for the node's loop), and says so once.  A newer membership
    that includes node 1 revokes nothing."""
    page = LeasePage.create(tmp_path / "lease")
    page.renew(time.monotonic_ns() + 60 * 10**9)
    one = spawn(1, lease=tmp_path / "lease")
    two = spawn(2)
    one.set_epoch(4, [1, 2])
    two.set_epoch(4, [1, 2])
    wire(one, two)
    assert wait_until(lambda: all_seen(one, two))
    two.set_epoch(5, [1, 2])  # includes node 1: it is ahead, nothing is revoked
    assert next_events(one) == [("ahead", 2, 5)]
    quiet_for(2)
    assert page.read().fresh()
    two.set_epoch(6, [0, 2])
    events = next_events(one)
    assert ("revoked", 2, 6) in events, events
    assert page.read().revoked == 6 and not page.read().fresh()
    quiet_for(THRESHOLD)
    assert [e for e in one.read_events() if e[0] == "revoked"] == [], "the revocation was reported twice"
    page.close()


def test_the_epoch_is_covered_by_the_mac(spawn: Spawn) -> None:
    """A datagram whose epoch was raised on the way is refused (it would make the receiver halt)."""
    one, two = spawn(1), spawn(2)
    wire(one, two)
    assert wait_until(lambda: all_seen(one))
    mac_key = _wire.derive_mac_key(KEY)
    genuine = _wire.encode(mac_key, 2, two.incarnation, 2**40, 0)
    raised = genuine[:23] + (9).to_bytes(8, "big") + genuine[31:]
    assert _wire.decode(mac_key, genuine) is not None
    assert _wire.decode(mac_key, raised) is None
    send_each([raised], one.addresses()[0])
    assert wait_until(lambda: one.stats()["rejected_mac"] == 1), one.stats()
    quiet_for(THRESHOLD)
    assert one.read_events() == []


def test_replayed_heartbeats_do_not_keep_a_dead_peer_alive(spawn: Spawn) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as recorder:
        recorder.bind(LOCAL)
        one, two = spawn(1), spawn(2)
        one.set_peers({2: two.addresses()})
        two.set_peers({1: one.addresses(), 99: [recorder.getsockname()]})  # the recorder gets what one gets
        one.start()
        two.start()
        assert wait_until(lambda: all_seen(one) and one.stats()["received"] >= 5)
        two.stop()
        recorder.setblocking(False)
        recorded = []
        while True:
            try:
                recorded.append(recorder.recv(1024))
            except BlockingIOError:
                break
    assert len(recorded) >= 5
    with Flood(lambda n: recorded[n % len(recorded)], one.addresses()[0]):
        assert next_events(one) == [("suspect", 2, 0)]
        quiet_for(THRESHOLD)
        assert one.read_events() == [], "a replayed heartbeat brought the peer back"
    assert one.stats()["rejected_replay"] > 0


def test_replays_of_an_earlier_life_are_refused(spawn: Spawn) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as recorder:
        recorder.bind(LOCAL)
        one, two = spawn(1), spawn(2)
        one.set_peers({2: two.addresses()})
        two.set_peers({1: one.addresses(), 99: [recorder.getsockname()]})
        one.start()
        two.start()
        assert wait_until(lambda: all_seen(one))
        first_life = recorder.recv(1024)
    two.stop()
    assert next_events(one) == [("suspect", 2, 0)]
    again = spawn(2, networks=two.addresses(), peers={1: one.addresses()})
    again.start()
    assert next_events(one) == [("back", 2, 0)]
    again.stop()
    assert next_events(one) == [("suspect", 2, 0)]
    # first_life is genuine, and its incarnation differs from the last one seen: only memory of it refuses it
    with Flood(lambda n: first_life, one.addresses()[0]):
        quiet_for(THRESHOLD)
    assert one.read_events() == [], "a datagram of an earlier incarnation brought the peer back"
    assert one.stats()["rejected_replay"] > 0


def test_malformed_datagrams_are_counted_and_harmless(spawn: Spawn) -> None:
    one, two = spawn(1), spawn(2)
    wire(one, two)
    assert wait_until(lambda: all_seen(one))
    mac_key = _wire.derive_mac_key(KEY)
    good = _wire.encode(mac_key, 2, 5, 1, 0)
    version_1 = good[:4] + b"\x01" + good[5:23] + good[-16:]  # 39 bytes, no epoch: an older node's heartbeat
    version_2 = good[:4] + b"\x02" + good[5:31] + good[-16:]  # 47 bytes, no members nor ages
    malformed = [b"", b"x", b"WPHB", good[:-1], good + b"\0", b"\xff" * 2000, os.urandom(183),
                 b"XPHB" + good[4:], good[:4] + b"\x04" + good[5:], good[:4] + b"\x02" + good[5:], version_1,
                 version_2]
    unknown = [_wire.encode(mac_key, 77, 5, 1, 0), _wire.encode(mac_key, 1, 5, 1, 0)]  # a stranger; itself
    send_each(malformed + unknown, one.addresses()[0])
    assert wait_until(lambda: one.stats()["rejected"] == len(malformed) + len(unknown)), one.stats()
    stats = one.stats()
    assert (stats["rejected_malformed"], stats["rejected_unknown"]) == (len(malformed), len(unknown))
    received = stats["received"]
    quiet_for(THRESHOLD)
    assert one.stats()["received"] > received, "the timer stopped receiving"
    assert one.stats()["thread_errno"] == 0
    assert one.read_events() == []


def test_the_event_fd_is_readable_exactly_while_events_are_pending(spawn: Spawn) -> None:
    one, two = spawn(1), spawn(2)
    wire(one, two)
    assert wait_until(lambda: all_seen(one))
    assert select.select([one.fileno()], [], [], 0)[0] == []
    two.stop()
    assert select.select([one.fileno()], [], [], EVENT_TIMEOUT_S)[0] == [one.fileno()]
    assert one.read_events() == [("suspect", 2, 0)]
    assert select.select([one.fileno()], [], [], 0)[0] == []
    assert one.read_events() == []


def test_heartbeats_keep_their_period_while_the_event_loop_is_busy(spawn: Spawn) -> None:
    """The main thread runs pure-Python work inside the event loop for 2 s; heartbeats still flow on time.

    For the C engine the interpreter's switch interval is raised to 0.5 s meanwhile, so a thread that needed
    the GIL would stall for about ten periods: only a thread that runs without it keeps time.  The Python
    twin gets the GIL every switch interval (5 ms) for each blocking call, hence the 50 ms period here.
    """
    period_ms = BUSY_PERIOD_MS
    one, two = spawn(1, period_ms=period_ms), spawn(2, period_ms=period_ms)
    wire(one, two)
    assert wait_until(lambda: all_seen(one, two))
    received_before = two.stats()["received"]

    async def saturate(seconds: float) -> list[tuple[str, int]]:
        loop = asyncio.get_running_loop()
        woken: list[tuple[str, int]] = []
        loop.add_reader(two.fileno(), lambda: woken.extend(two.read_events()))
        end = time.monotonic() + seconds
        total = 0
        while time.monotonic() < end:  # never yields to the loop, never releases the GIL on purpose
            for i in range(2000):
                total += i * i
        loop.remove_reader(two.fileno())
        return woken

    busy_for = 2.0
    switch_interval = sys.getswitchinterval()
    if one.implementation == "c":
        sys.setswitchinterval(0.5)
    try:
        woken = asyncio.run(saturate(busy_for))
    finally:
        sys.setswitchinterval(switch_interval)
    assert woken == []
    stats_two, stats_one = two.stats(), one.stats()
    limit_us = 3 * period_ms * 1000
    assert stats_two["max_receive_gap_us"] <= limit_us, stats_two
    assert stats_one["max_send_lateness_us"] <= limit_us, stats_one
    assert stats_two["received"] - received_before >= busy_for / (period_ms / 1000) / 2, stats_two
    assert two.read_events() == []


def test_c_and_python_timers_see_each_other() -> None:
    require_c_extension()
    assert CHeartbeatTimer is not None
    with CHeartbeatTimer(1, KEY, [LOCAL, LOCAL], period_ms=PERIOD_MS, missed_threshold=THRESHOLD) as c_timer, \
            PyHeartbeatTimer(2, KEY, [LOCAL, LOCAL], period_ms=PERIOD_MS, missed_threshold=THRESHOLD) as py_timer:
        wire(c_timer, py_timer)
        assert wait_until(lambda: all_seen(c_timer, py_timer))
        quiet_for(THRESHOLD)
        for timer in (c_timer, py_timer):
            assert timer.read_events() == []
            assert timer.stats()["rejected"] == 0, timer.stats()
