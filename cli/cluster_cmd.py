"""``wolfpack cluster``: create a cluster's node files, and change cluster-wide settings."""

from __future__ import annotations

import secrets
from pathlib import Path

import click

from wolfpack.api_options import api_options, client, show
from wolfpack.runtime.daemon import config as node_config


def _node(text: str, port: int, heartbeat_port: int, admin_port: int,
          admin_host: str | None) -> node_config.NodeEntry:
    ident, sep, addresses = text.partition("=")
    if not sep or not ident.isdigit() or not addresses:
        raise click.BadParameter(f"{text!r} is not ID=ADDRESS[,ADDRESS...], e.g. 0=10.0.0.1,10.0.1.1",
                                 param_hint="--node")
    hosts = [a.strip() for a in addresses.split(",") if a.strip()]
    try:
        address = node_config.parse_address(f"{hosts[0]}:{port}", f"--node {text}: ")
        beats = tuple(node_config.parse_address(f"{h}:{heartbeat_port}", f"--node {text}: ") for h in hosts)
        admin = node_config.parse_address(f"{admin_host or hosts[0]}:{admin_port}", f"--node {text}: ")
    except Exception as exc:
        raise click.BadParameter(str(exc), param_hint="--node") from None
    return node_config.NodeEntry(int(ident), address, beats, admin)


@click.group("cluster")
def command() -> None:
    """The cluster as a whole."""


@command.command("create")
@click.argument("name")
@click.option("--node", "nodes", multiple=True, required=True, metavar="ID=ADDR[,ADDR...]",
              help="A node: its id, its transport address, then one address per further heartbeat network.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Where to write cluster.key, admin.token and node-ID.toml.")
@click.option("--etc", type=click.Path(path_type=Path, file_okay=False),
              help="Where the files will be on the nodes (default: --out); the node files name the key there.")
@click.option("--data-dir", default="/var/lib/wolfpack", show_default=True, help="Each node's data directory.")
@click.option("--quorum", type=click.Choice(["mns", "disk"]), default="mns", show_default=True)
@click.option("--port", default=7400, show_default=True, help="Transport (TCP) port.")
@click.option("--heartbeat-port", default=7401, show_default=True, help="Heartbeat (UDP) port.")
@click.option("--admin-port", default=7410, show_default=True, help="Admin API port.")
@click.option("--admin-host", help="Address the admin API listens on (default: 127.0.0.1, local use only).")
def create(name: str, nodes: tuple[str, ...], out: Path, etc: Path | None, data_dir: str, quorum: str, port: int,
           heartbeat_port: int, admin_port: int, admin_host: str | None) -> None:
    """Write the files of a new cluster NAME: a fresh key, an admin token, and one node file per node.

    Copy the directory to /etc/wolfpack on every node (docs/lab.md), then start wolfpackd on each.
    """
    entries = sorted((_node(n, port, heartbeat_port, admin_port, admin_host) for n in nodes), key=lambda e: e.id)
    out.mkdir(parents=True, exist_ok=True)
    where = (etc or out).absolute()
    for filename, secret in (("cluster.key", secrets.token_hex(32)), ("admin.token", secrets.token_hex(16))):
        path = out / filename
        if path.exists():
            raise click.ClickException(f"{path} exists; a cluster keeps its key: use another --out")
        path.write_text(secret + "\n")
        path.chmod(0o600)
    for e in entries:
        values = {"cluster.name": name, "cluster.key_file": str(where / "cluster.key"), "cluster.quorum": quorum,
                  "node.id": e.id, "node.data_dir": data_dir, "admin.token_file": str(where / "admin.token"),
                  "admin.listen": f"{admin_host or '127.0.0.1'}:{admin_port}"}
        (out / f"node-{e.id}.toml").write_text(node_config.render(values, entries))
    node_config.load(out / f"node-{entries[0].id}.toml",
                     overrides={"cluster.key_file": str(out / "cluster.key"),
                                "admin.token_file": str(out / "admin.token")}, environ={})
    click.echo(f"cluster {name}: wrote {out}/cluster.key, {out}/admin.token and "
               + ", ".join(f"node-{e.id}.toml" for e in entries)
               + f"; install them as {where}/ (node.toml = that node's file) on each node, then start wolfpackd")


@command.command("set")
@click.argument("settings", nargs=-1, required=True, metavar="SECTION.KEY=VALUE...")
@api_options
def set_values(settings: tuple[str, ...], api: str | None, token: str | None, config_path: Path | None,
               fmt: str) -> None:
    """Change cluster-wide settings (one global update; checked against the timing obligations first)."""
    values = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not SECTION.KEY=VALUE")
        values[key] = value
    show(client(api, token, config_path).post("/v1/cluster/parameters", {"values": values}), fmt,
         lambda r: f"cluster-wide settings changed (update {r['seq']}): "
                   + ", ".join(f"{k}={v}" for k, v in r["values"].items()))
