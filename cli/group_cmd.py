"""``wolfpack group``: create, delete, list, bring online or offline, move and configure groups."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from wolfpack.api_options import api_options, client, render_table, show
from wolfpack.client import AdminClient
from wolfpack.errors import WolfpackError


def _ids(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of node ids, e.g. 0,1,2") from None


def _window(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        start, end = (int(x) for x in text.split("-"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not START-END in hours, e.g. 22-6 (or -1--1: any hour)") from None
    return [start, end]


def wait_group(api: AdminClient, name: str, state: str, owner: int | None, timeout_s: float) -> dict[str, Any]:
    """Until the group is in ``state`` (on ``owner``, if given), as the node's status shows it."""
    deadline = time.monotonic() + timeout_s
    while True:
        group = next((g for g in api.get("/v1/status")["groups"] if g["name"] == name), None)
        if group and group["state"] == state and (owner is None or group["owner"] == owner):
            return group
        if time.monotonic() > deadline:
            raise WolfpackError(f"group {name} is not {state}{f' on node {owner}' if owner is not None else ''} "
                                f"after {timeout_s:g} s (now: {group and group['state']} on {group and group['owner']})"
                                "; see `wolfpack status`")
        time.sleep(0.1)


@click.group("group")
def command() -> None:
    """Resource groups, the unit of failover."""


@command.command("list")
@api_options
def list_groups(api: str | None, token: str | None, config_path: Path | None, fmt: str) -> None:
    """Every group with its state, owner and resources."""
    groups = client(api, token, config_path).get("/v1/status")["groups"]
    show(groups, fmt, lambda rows: render_table(
        ["GROUP", "STATE", "OWNER", "WANTED", "PREFERRED", "RESOURCES"],
        [[g["name"], g["state"], g["owner"], g["wanted"], ",".join(map(str, g["preferred"])) or "-",
          ",".join(r["name"] for r in g["resources"]) or "-"] for g in rows]))


@command.command("create")
@click.argument("name")
@click.option("--preferred", help="Preferred owners in order, e.g. 0,1,2 (cascading failover).")
@click.option("--failback/--no-failback", default=False, help="Fail back to the most preferred node (F8).")
@click.option("--failback-window", help="Hours when failback may happen, START-END (e.g. 22-6).")
@api_options
def create(name: str, preferred: str | None, failback: bool, failback_window: str | None, api: str | None,
           token: str | None, config_path: Path | None, fmt: str) -> None:
    """Create group NAME, offline, owned by the node you ask."""
    body = {"name": name, "preferred": _ids(preferred) or [], "failback": failback,
            "failback_window": _window(failback_window) or [-1, -1]}
    show(client(api, token, config_path).post("/v1/groups", body), fmt,
         lambda r: f"group {name} created (update {r['seq']}); add resources, then `wolfpack group online {name}`")


@command.command("delete")
@click.argument("name")
@api_options
def delete(name: str, api: str | None, token: str | None, config_path: Path | None, fmt: str) -> None:
    """Delete group NAME (it must be offline) with its resources."""
    show(client(api, token, config_path).delete(f"/v1/groups/{name}"), fmt, lambda r: f"group {name} deleted")


def _state_command(state: str) -> None:
    @command.command(state, help=f"Bring group NAME {state} (its PersistentState; it stays {state} across failovers).")
    @click.argument("name")
    @click.option("--wait", "wait_s", type=float, default=0, help="Wait up to this many seconds for it.")
    @api_options
    def run(name: str, wait_s: float, api: str | None, token: str | None, config_path: Path | None, fmt: str) -> None:
        c = client(api, token, config_path)
        result = c.post(f"/v1/groups/{name}/{state}")
        if wait_s:
            result = {**result, "group": wait_group(c, name, state.capitalize(), None, wait_s)}
        show(result, fmt, lambda r: f"group {name}: {state} (update {r['seq']})")


_state_command("online")
_state_command("offline")


@command.command("move")
@click.argument("name")
@click.option("--to", "node", type=int, required=True, help="The node to move it to.")
@click.option("--wait", "wait_s", type=float, default=0, help="Wait up to this many seconds for it to be there.")
@api_options
def move(name: str, node: int, wait_s: float, api: str | None, token: str | None, config_path: Path | None,
         fmt: str) -> None:
    """Move group NAME to another node (offline here in order, then online there)."""
    c = client(api, token, config_path)
    result = c.post(f"/v1/groups/{name}/move", {"node": node})
    if wait_s:
        before = time.monotonic()
        group = next(g for g in c.get("/v1/status")["groups"] if g["name"] == name)
        state = "Online" if group["wanted"] == "online" else "Offline"
        result = {**result, "group": wait_group(c, name, state, node, wait_s),
                  "seconds": round(time.monotonic() - before, 3)}
    show(result, fmt, lambda r: f"group {name}: moving to node {node}"
         + (f"; {r['group']['state']} there after {r['seconds']} s" if "seconds" in r else ""))


@command.command("configure")
@click.argument("name")
@click.option("--preferred", help="Preferred owners in order, e.g. 0,1,2.")
@click.option("--failback/--no-failback", default=None, help="Allow or prevent failback.")
@click.option("--failback-window", help="Hours when failback may happen, START-END.")
@api_options
def configure(name: str, preferred: str | None, failback: bool | None, failback_window: str | None,
              api: str | None, token: str | None, config_path: Path | None, fmt: str) -> None:
    """Change group NAME's preferred owners or failback policy."""
    body = {"preferred": _ids(preferred), "failback": failback, "failback_window": _window(failback_window)}
    show(client(api, token, config_path).post(f"/v1/groups/{name}/configure", body), fmt,
         lambda r: f"group {name} configured (update {r['seq']})")
