"""``wolfpack db``: read the cluster database; keep applications' own data in it (under Custom/)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from wolfpack.api_options import api_options, client, show


@click.group("db")
def command() -> None:
    """The cluster database (a registry: keys, values, subkeys), the same on every node."""


@command.command("get")
@click.argument("key", default="")
@api_options
def get(key: str, api: str | None, token: str | None, config_path: Path | None, fmt: str) -> None:
    """Show KEY's values and subkeys (default: the root)."""
    data = client(api, token, config_path).get(f"/v1/db?key={key}")
    show(data, fmt, lambda d: "\n".join([f"{k} = {json.dumps(v)}" for k, v in sorted(d["values"].items())]
                                        + [f"{d['key'] + '/' if d['key'] else ''}{s}/" for s in d["subkeys"]]))


@command.command("set")
@click.argument("key")
@click.argument("values", nargs=-1, required=True, metavar="NAME=VALUE...")
@api_options
def set_values(key: str, values: tuple[str, ...], api: str | None, token: str | None, config_path: Path | None,
               fmt: str) -> None:
    """Set values of KEY (under Custom/): one global update. VALUE is JSON if it parses, else text."""
    pairs = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE")
        try:
            pairs[name] = json.loads(value)
        except ValueError:
            pairs[name] = value
    show(client(api, token, config_path).post("/v1/db", {"key": key, "set": pairs}), fmt,
         lambda r: f"{key}: set (update {r['seq']})")
