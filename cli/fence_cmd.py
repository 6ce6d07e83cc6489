"""``wolfpack fence``: the cluster's fence devices (STONITH) and the fencing of lost nodes.

A device is one ClusterLabs fence agent (``fence_ipmilan``, ``fence_apc``, ``fence_scsi``..., or Wolfpack's
``fence_wolfpack_lab``) with its parameters and the nodes it fences; devices live in the cluster database, so
every node has the same.  With ``wolfpack cluster set cluster.fencing=required`` the survivors fence a lost
owner before they take over its groups.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from wolfpack.api_options import api_options, client, render_table, show


@click.group("fence")
def command() -> None:
    """Fence devices: list, add, test and remove them; confirm by hand that a lost node is off."""


def _pairs(values: tuple[str, ...], what: str, example: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{text!r} is not KEY=VALUE (e.g. {example})", param_hint=what)
        out[key] = value
    return out


def _nodes(values: tuple[str, ...]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for text in values:
        node, sep, plug = text.partition("=")
        if not node.isdigit():
            raise click.BadParameter(f"{text!r} is not NODE or NODE=PLUG (e.g. --node 1 or --node 1=outlet-3)",
                                     param_hint="--node")
        out[node] = plug if sep else None
    return out


@command.command("list")
@api_options
def list_devices(api: str | None, token: str | None, config_path: Path | None, fmt: str) -> None:
    """The fence devices (secrets masked), the fencing setting, and the last fence of each node."""
    data = client(api, token, config_path).get("/v1/fence")

    def table(d: dict[str, Any]) -> str:
        head = f"fencing: {d['fencing']} (action {d['action']})"
        if d["unfenced"]:
            head += f"; waiting for a fence: nodes {', '.join(map(str, d['unfenced']))}"
        rows = [[x["name"], x["agent"], ", ".join(f"{k}={v}" if v is not None else k for k, v in x["nodes"].items()),
                 " ".join(f"{k}={v}" for k, v in x["params"].items())] for x in d["devices"]]
        out = [head, render_table(["DEVICE", "AGENT", "NODES", "PARAMETERS"], rows) if rows else "no fence devices"]
        if d["nodes"]:
            out.append(render_table(["NODE", "LAST FENCE", "DEVICE", "TOOK MS", "REASON"],
                                    [[k, v["state"], v["device"] or "-", v["took_ms"] if v["took_ms"] is not None
                                      else "-", v["reason"]] for k, v in d["nodes"].items()]))
        return "\n".join(out)
    show(data, fmt, table)


@command.command("add")
@click.argument("name")
@click.option("--agent", required=True, help="the fence agent, e.g. fence_ipmilan (found in /usr/sbin)")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="an agent parameter (repeat), e.g. --param ip=10.0.0.21 --param username=admin")
@click.option("--node", "nodes", multiple=True, required=True, metavar="NODE[=PLUG]",
              help="a node the device fences, with its plug (outlet, VM, port) if the agent needs one (repeat)")
@click.option("--replace", is_flag=True, help="replace a device of that name (it keeps its place in the order)")
@api_options
def add(name: str, agent: str, params: tuple[str, ...], nodes: tuple[str, ...], replace: bool, api: str | None,
        token: str | None, config_path: Path | None, fmt: str) -> None:
    """Add fence device NAME (checked against the agent's metadata). Devices are tried in the order added."""
    body = {"name": name, "agent": agent, "params": _pairs(params, "--param", "ip=10.0.0.21"),
            "nodes": _nodes(nodes), "replace": replace}
    result = client(api, token, config_path).post("/v1/fence", body)
    show(result, fmt, lambda r: f"fence device {name} {'replaced' if r['replaced'] else 'added'} (update {r['seq']})")


@command.command("remove")
@click.argument("name")
@api_options
def remove(name: str, api: str | None, token: str | None, config_path: Path | None, fmt: str) -> None:
    """Remove fence device NAME."""
    result = client(api, token, config_path).delete(f"/v1/fence/{name}")
    show(result, fmt, lambda r: f"fence device {name} removed (update {r['seq']})")


@command.command("test")
@click.argument("name")
@click.option("--node", type=int, default=None, help="only this node (default: every node the device fences)")
@api_options
def test(name: str, node: int | None, api: str | None, token: str | None, config_path: Path | None,
         fmt: str) -> None:
    """Check that device NAME answers: run its agent's ``status`` for each node (nothing is powered off).
    Exit status 1 if any check failed."""
    result = client(api, token, config_path).post(f"/v1/fence/{name}/test", {"node": node} if node is not None
                                                  else None)
    show(result, fmt, lambda r: render_table(["NODE", "OK", "POWER", "TOOK MS", "REASON"],
                                             [[x["node"], "yes" if x["ok"] else "NO", x["power"] or "-",
                                               x["took_ms"], x["reason"]] for x in r["results"]]))
    if not result["ok"]:
        raise SystemExit(1)


@command.command("confirm")
@click.argument("node", type=int)
@click.option("--yes", is_flag=True, help="do not ask")
@api_options
def confirm(node: int, yes: bool, api: str | None, token: str | None, config_path: Path | None, fmt: str) -> None:
    """Confirm that lost NODE is powered off (after a failed fence): its groups may then start elsewhere.
    Confirming a node that still runs them gives two copies: make sure first."""
    if not yes:
        click.confirm(f"Node {node} is powered off or cut from its storage, and runs nothing?", abort=True)
    result = client(api, token, config_path).post("/v1/fence/confirm", {"node": node})
    show(result, fmt, lambda r: f"node {node} confirmed off on nodes {', '.join(map(str, r['confirmed_on']))}"
         + (f"; not told: {'; '.join(r['missed'])}" if r["missed"] else ""))
