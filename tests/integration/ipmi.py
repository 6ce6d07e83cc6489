"""OpenIPMI's BMC simulator ``ipmi_sim`` as a node's BMC, for the ClusterLabs ``fence_ipmilan`` (unchanged): its
chassis power-off kills every process of the node's network namespace (the node loses power)."""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from wolfpack.runtime.fencing import FenceDevice, run_agent

#: ipmi_sim's ``chassis_control`` program: ipmi_sim runs ``<prog> get power`` (answer ``power:<0|1>``) for Get
#: Chassis Status, and ``<prog> set power <0|1>`` for Chassis Control.  Power off kills every process of the
#: node's network namespace: the node loses power.
CHASSIS = """#!/bin/sh
state={state}
case "$1 $2" in
  "get power") echo "power:$(cat "$state")" ;;
  "set power")
    if [ "$3" = 0 ]; then ip netns pids {ns} | xargs -r kill -KILL; fi
    echo "$3" > "$state" ;;
  *) exit 1 ;;
esac
"""

LAN_CONF = """name "wolfpack-test-bmc"
set_working_mc 0x20
  startlan 1
    addr {host} {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "{chassis}"
  user 2 true "admin" "{password}" admin 10 none md2 md5 straight
"""

#: One BMC (IPMB 0x20) with no SDRs: enough for the chassis commands.
EMU = """mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
mc_enable 0x20
"""


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host if host == "127.0.0.1" else "0.0.0.0", 0))
        port: int = s.getsockname()[1]
        return port


class Bmc:
    def __init__(self, port: int, password: str, host: str = "127.0.0.1") -> None:
        self.port, self.password, self.host = port, password, host

    def params(self, password: str | None = None) -> dict[str, str]:
        """fence_ipmilan's parameters for this BMC (cipher 3 skips ipmitool's cipher-suite probe, which ipmi_sim
        does not answer: a 14 s wait otherwise)."""
        return {"ip": self.host, "ipport": str(self.port), "username": "admin",
                "password": self.password if password is None else password, "lanplus": "1", "cipher": "3",
                "power_wait": "0"}

    def device(self, password: str | None = None, name: str = "bmc", node: str = "n1") -> FenceDevice:
        return FenceDevice(name, "fence_ipmilan", self.params(password), {node: None})


def wait_until(what: str, check: object, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def bmc_for(work: Path, node_ns: str, *, host: str = "127.0.0.1", prefix: Sequence[str] = (),
            probe: bool = True) -> Iterator[Bmc]:
    """A BMC for the node in namespace ``node_ns``, listening on ``host`` (run with ``prefix``: e.g. in the test
    network's switch namespace, where every node reaches it)."""
    (work / "state").mkdir(parents=True)
    (work / "power").write_text("1\n")
    chassis = work / "chassis"
    chassis.write_text(CHASSIS.format(state=work / "power", ns=node_ns))
    chassis.chmod(0o755)
    port, password = free_udp_port(host), secrets.token_hex(8)
    (work / "lan.conf").write_text(LAN_CONF.format(host=host, port=port, chassis=chassis, password=password))
    (work / "bmc.emu").write_text(EMU)
    log = open(work / "ipmi_sim.log", "wb")  # noqa: SIM115 - ipmi_sim writes it until killed
    sim = subprocess.Popen([*prefix, "ipmi_sim", "-n", "-c", str(work / "lan.conf"), "-f", str(work / "bmc.emu"),
                            "-s", str(work / "state")], stdin=subprocess.DEVNULL, stdout=log,
                           stderr=subprocess.STDOUT)
    log.close()
    try:
        server = Bmc(port, password, host)
        if probe:
            wait_until("ipmi_sim to answer", lambda: sim.poll() is not None or run_agent(
                server.device(), "status", "n1", timeout_s=10).ok)
        else:
            time.sleep(0.5)
        assert sim.poll() is None, (work / "ipmi_sim.log").read_text()
        yield server
    finally:
        sim.kill()
        sim.wait(timeout=10)


