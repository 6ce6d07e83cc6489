"""Options and output shared by the commands that talk to a node's admin API (node, group, resource, ...)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from wolfpack.client import AdminClient, connect

F = TypeVar("F", bound=Callable[..., Any])


def api_options(fn: F) -> F:
    """``--api``, ``--token``, ``--config`` and ``--format``; the command gets ``client`` and ``fmt``."""
    fn = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
                      help="Output as a table for people or as JSON for scripts.")(fn)
    fn = click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
                      help="A node file: talk to that node's daemon (default /etc/wolfpack/node.toml).")(fn)
    fn = click.option("--token", envvar="WOLFPACK_TOKEN", help="The admin API token (env WOLFPACK_TOKEN).")(fn)
    fn = click.option("--api", envvar="WOLFPACK_API", help="The admin API's URL, e.g. http://127.0.0.1:7410 "
                      "(env WOLFPACK_API).")(fn)
    return fn


def client(api: str | None, token: str | None, config_path: Path | None) -> AdminClient:
    return connect(api, token, config_path)


def show(data: Any, fmt: str, table: Callable[[Any], str] | None = None) -> None:
    if fmt == "json" or table is None:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(table(data))


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)
