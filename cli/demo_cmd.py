"""``wolfpack demo``: a 3-node cluster on this machine, a group, and a failover to watch.

Three ``wolfpackd`` processes on loopback (each with its own data directory,
Majority Node Set quorum, no root needed) form a cluster; a group ``web``
with a Generic Application (a small HTTP server, checked by an HTTP GET) is
brought online; the owner's daemon is killed with SIGKILL; the timeline of
detection, regroup and the group coming online elsewhere is read from the
survivors' transition logs and printed with times.  Then everything stops.
"""

from __future__ import annotations

import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import click

from wolfpack.errors import WolfpackError
from wolfpack.runtime.daemon.lab import LabCluster, free_port

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _say(t0: float, text: str) -> None:
    click.echo(f"{(time.monotonic() - t0) * 1000:8.0f} ms  {text}")


def _fetch(url: str) -> str:
    try:
        with _OPENER.open(url, timeout=2) as r:
            return f"HTTP {r.status}"
    except OSError as exc:
        return f"no answer ({getattr(exc, 'reason', exc)})"


def failover_timeline(records: list[dict[str, Any]], killed_ms: int, victim: int, group_slot: int) -> list[
        tuple[int, str]]:
    """The steps of the failover in the survivors' logs, as (ms after the kill, what happened)."""
    out: list[tuple[int, str]] = []
    seen: set[str] = set()

    def once(key: str, t: int, text: str) -> None:
        if key not in seen:
            seen.add(key)
            out.append((t - killed_ms, text))

    for r in sorted(records, key=lambda r: r["t"]):
        if r.get("kind") != "step" or r["t"] < killed_ms or "dest" not in r:
            continue
        node, machine, trigger = r["node"], r["machine"], r["trigger"]
        if machine == "membership" and trigger == "suspect" and r["args"].get("node") == victim:
            once(f"suspect{node}", r["t"], f"node {node}: heartbeats of node {victim} missed on every network "
                                           "(suspected)")
        if machine == "membership" and r["source"] == "Stable" and r["dest"] == "Collecting":
            once(f"regroup{node}", r["t"], f"node {node}: regroup started ({trigger})")
        elif machine == "membership" and r["dest"] == "Stable" and r["source"] != "Stable":
            once(f"installed{node}", r["t"], f"node {node}: new membership installed")
        elif machine == "failover" and trigger == "takeover_elapsed":
            once("takeover", r["t"], f"node {node}: take-over wait over (node {victim} must have stopped by "
                                     "now): places its groups")
        elif machine == f"group{group_slot}" and r["dest"] == "OnlinePending" and r["source"] == "Offline":
            once(f"starting{node}", r["t"], f"node {node}: group web starting (new owner)")
        elif machine == f"group{group_slot}" and r["dest"] == "Online":
            once("online", r["t"], f"node {node}: group web Online")
    return out


@click.command("demo")
@click.option("--keep", is_flag=True, help="Keep the cluster's directory (logs, transition logs) afterwards.")
def command(keep: bool) -> None:
    """Start a 3-node cluster here, run a web server in it, kill its node, watch it fail over."""
    root = Path(tempfile.mkdtemp(prefix="wolfpack-demo-"))
    t0 = time.monotonic()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    click.echo(f"wolfpack demo: a 3-node cluster on 127.0.0.1, files in {root}")
    with LabCluster(root, ["127.0.0.1"] * 3, name="demo", settings={"monitor.looks_alive_ms": 500}) as lab:
        lab.start_all()
        for i in range(3):
            lab.wait_api(i)
        _say(t0, "three wolfpackd processes started (node 0, 1, 2)")
        lab.wait_for("the cluster to form", lambda: all(lab.formed(i, [0, 1, 2]) for i in range(3)), 30)
        _say(t0, "cluster formed: membership {0, 1, 2}, Majority Node Set quorum (2 of 3)")
        api = lab.client(0)
        api.post("/v1/groups", {"name": "web", "preferred": [0, 1, 2]})
        api.post("/v1/resources", {
            "group": "web", "name": "web-server", "type": "Generic Application",
            "properties": {"command": [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                           "health": {"http": url}, "online_waits_for_health": True, "stop_grace_ms": 2000},
            "settings": {"looks_alive_ms": 500, "is_alive_ms": 5000}})
        api.post("/v1/groups/web/online")
        lab.wait_for("group web online", lambda: lab.group(0, "web")["state"] == "Online", 30)
        owner = int(lab.group(0, "web")["owner"])
        _say(t0, f"group web (a Generic Application: python -m http.server {port}) Online on node {owner}; "
                 f"{url} answers {_fetch(url)}")
        survivors = [i for i in range(3) if i != owner]
        slot = _slot(lab, survivors[0])
        killed_ms = time.time_ns() // 1_000_000
        lab.kill(owner)
        _say(t0, f"kill -9 of node {owner}'s wolfpackd (its resource monitor sees it die and stops the web server)")
        took = lab.wait_for("the failover", lambda: (g := lab.group(survivors[0], "web"))["state"] == "Online"
                            and g["owner"] != owner, 30, every_s=0.02)
        new_owner = lab.group(survivors[0], "web")["owner"]
        _say(t0, f"group web Online on node {new_owner}, {took * 1000:.0f} ms after the kill; {url} answers "
                 f"{_fetch(url)}")
        click.echo("\ntimeline from the survivors' transition logs (ms after the kill):")
        records = [r for i in survivors for r in lab.trace(i)]
        for ms, text in failover_timeline(records, killed_ms, owner, slot):
            click.echo(f"  {ms:6d} ms  {text}")
        lab.stop_all()
        _say(t0, "stopped: every node left the cluster and stopped its resources")
    if not keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    else:
        click.echo(f"kept {root} (node*.log, node*/transitions.ndjson)")


def _slot(lab: LabCluster, node: int) -> int:
    for r in lab.trace(node):
        if r.get("kind") == "step" and r["machine"] == "failover" and r["trigger"] == "group_configured" \
                and r["args"].get("wanted") == 2:
            return int(r["args"]["group"])
    raise WolfpackError("group web's slot is not in the transition log")
