"""``wolfpack status``: the cluster as one node sees it, each group's state as its owner reports it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from wolfpack.api_options import api_options, client, render_table, show


def status_table(data: dict[str, Any]) -> str:
    m, u = data["membership"], data["updates"]
    head = (f"cluster {data['cluster']} (quorum {data['quorum']}), seen from node {data['node']}: "
            f"{m['state']}, epoch {m['epoch']}, members {','.join(map(str, m['members'])) or '-'}; "
            f"{u['last_seq']} updates, locker node {u['locker']}")
    nodes = render_table(["NODE", "STATE", "ADDRESS"], [[n["id"], n["state"], n["address"]] for n in data["nodes"]])
    rows = [[g["name"], g["state"], g["owner"] if g["owner"] >= 0 else "-", g["wanted"],
             ",".join(map(str, g["preferred"])) or "-",
             ", ".join(f"{r['name']} ({r['state']})" for r in g["resources"]) or "-"] for g in data["groups"]]
    groups = render_table(["GROUP", "STATE", "OWNER", "WANTED", "PREFERRED", "RESOURCES"], rows) if rows \
        else "no groups (wolfpack group create NAME)"
    return f"{head}\n\n{nodes}\n\n{groups}"


@click.command("status")
@api_options
def command(api: str | None, token: str | None, config_path: Path | None, fmt: str) -> None:
    """Show the cluster: nodes, membership, groups and resources."""
    show(client(api, token, config_path).get("/v1/status"), fmt, status_table)
