"""``wolfpack resource``: create, delete, list resources; bring them online with their group; fail one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from wolfpack.api_options import api_options, client, render_table, show


def _value(text: str) -> Any:
    """A property value: JSON if it parses (numbers, true, lists, objects), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pairs(items: tuple[str, ...], what: str) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=what)
        out[key] = _value(value)
    return out


@click.group("resource")
def command() -> None:
    """Resources: an application, a script, an OCF agent, in a group."""


@command.command("list")
@api_options
def list_resources(api: str | None, token: str | None, config_path: Path | None, fmt: str) -> None:
    """Every resource with its group, type and state."""
    groups = client(api, token, config_path).get("/v1/status")["groups"]
    rows = [{"name": r["name"], "group": g["name"], "type": r["type"], "state": r["state"], "owner": g["owner"]}
            for g in groups for r in g["resources"]]
    show(rows, fmt, lambda rs: render_table(["RESOURCE", "GROUP", "TYPE", "STATE", "NODE"],
                                            [[r["name"], r["group"], r["type"], r["state"], r["owner"]] for r in rs]))


@command.command("types")
@api_options
def types(api: str | None, token: str | None, config_path: Path | None, fmt: str) -> None:
    """The installed resource types and their properties."""
    data = client(api, token, config_path).get("/v1/types")
    show(data, fmt, lambda d: "\n".join(f"{name}: " + ", ".join(p["name"] for p in props if isinstance(p, dict))
                                       for name, props in d.items()))


@command.command("create")
@click.argument("group")
@click.argument("name")
@click.option("--type", "type_name", required=True, help="The resource type, e.g. 'Generic Application'.")
@click.option("--property", "-p", "props", multiple=True, metavar="KEY=VALUE",
              help="A property (VALUE is JSON if it parses, else text); repeat it.")
@click.option("--depends-on", help="Resources of the same group it needs online first, e.g. ip,disk.")
@click.option("--separate-monitor", is_flag=True, help="Run it in a resource monitor of its own (R1).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="looks_alive_ms, is_alive_ms, pending_timeout_ms, restart_threshold, restart_delay_ms, ..., "
                   "multiple_active=stop_start|block (a copy found on a node that does not own the group: "
                   "stop it, the default; or stop nothing and keep that node out of the cluster).")
@api_options
def create(group: str, name: str, type_name: str, props: tuple[str, ...], depends_on: str | None,
           separate_monitor: bool, settings: tuple[str, ...], api: str | None, token: str | None,
           config_path: Path | None, fmt: str) -> None:
    """Create resource NAME in GROUP (the group must be offline)."""
    extra = _pairs(settings, "--set")
    if separate_monitor:
        extra["separate_monitor"] = True
    body = {"group": group, "name": name, "type": type_name, "properties": _pairs(props, "--property"),
            "depends_on": [d for d in (depends_on or "").split(",") if d], "settings": extra}
    show(client(api, token, config_path).post("/v1/resources", body), fmt,
         lambda r: f"resource {name} created in group {group} (update {r['seq']})")


def _action(name: str, doc: str) -> None:
    @command.command(name, help=doc)
    @click.argument("resource")
    @api_options
    def run(resource: str, api: str | None, token: str | None, config_path: Path | None, fmt: str) -> None:
        result = client(api, token, config_path).post(f"/v1/resources/{resource}/{name}")
        show(result, fmt, lambda r: r.get("note") or f"resource {resource}: {name} done")


_action("online", "Bring RESOURCE online: its group comes online with all its resources.")
_action("offline", "Take RESOURCE offline (refused: take its group offline instead).")
_action("fail", "Make RESOURCE fail on its node, as a failed IsAlive would (to test restarts and failover).")


@command.command("delete")
@click.argument("resource")
@api_options
def delete(resource: str, api: str | None, token: str | None, config_path: Path | None, fmt: str) -> None:
    """Delete RESOURCE (its group must be offline; nothing may depend on it)."""
    show(client(api, token, config_path).delete(f"/v1/resources/{resource}"), fmt,
         lambda r: f"resource {resource} deleted")
