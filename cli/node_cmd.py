"""``wolfpack node``: list, join, leave, pause, resume and evict nodes."""

from __future__ import annotations

from pathlib import Path

import click

from wolfpack.api_options import api_options, client, render_table, show


@click.group("node")
def command() -> None:
    """Nodes: list them, start or stop their cluster role, pause them for maintenance, evict them."""


@command.command("list")
@api_options
def list_nodes(api: str | None, token: str | None, config_path: Path | None, fmt: str) -> None:
    """The configured nodes and their state."""
    data = client(api, token, config_path).get("/v1/status")["nodes"]
    show(data, fmt, lambda rows: render_table(["NODE", "STATE", "MEMBER", "ADDRESS"],
                                              [[n["id"], n["state"], "yes" if n["member"] else "no", n["address"]]
                                               for n in rows]))


def _action(name: str, doc: str) -> None:
    @command.command(name, help=doc)
    @click.argument("node", type=int)
    @api_options
    def run(node: int, api: str | None, token: str | None, config_path: Path | None, fmt: str) -> None:
        result = client(api, token, config_path).post(f"/v1/nodes/{node}/{name}")
        show(result, fmt, lambda r: f"node {node}: {name} done" + (f" (update {r['seq']})" if "seq" in r else ""))


_action("join", "Start NODE's cluster role: it joins the running cluster (its daemon must run).")
_action("leave", "Planned leave of NODE (ClusterExit): it stops its resources at once; the others go on.")
_action("pause", "Pause NODE for maintenance: it keeps its groups but takes no new ones.")
_action("resume", "Resume a paused NODE.")
_action("drain", "Pause NODE and move its groups away (maintenance).")
_action("evict", "Evict NODE (it must not be a member: `wolfpack node leave` it first); it is refused from then on.")
