"""The ``wolfpack`` command: one command, subcommands grouped by purpose.

Each subcommand lives in its own module (``wolfpack.<name>_cmd``) and is
imported only when used, so ``wolfpack diagram`` never loads z3.
User errors (:class:`~wolfpack.errors.WolfpackError`) print one clean
message on stderr and exit with status 1.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from wolfpack import __version__
from wolfpack.errors import WolfpackError

#: subcommand name -> module that defines ``command`` (a click.Command)
SUBCOMMANDS = {
    "diagram": "wolfpack.diagram_cmd",
    "verify": "wolfpack.verify_cmd",
    "machines": "wolfpack.machines_cmd",
    "simulate": "wolfpack.simulate_cmd",
    "status": "wolfpack.status_cmd",
    "cluster": "wolfpack.cluster_cmd",
    "node": "wolfpack.node_cmd",
    "group": "wolfpack.group_cmd",
    "resource": "wolfpack.resource_cmd",
    "demo": "wolfpack.demo_cmd",
    "trace": "wolfpack.trace_cmd",
    "db": "wolfpack.db_cmd",
    "fence": "wolfpack.fence_cmd",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = SUBCOMMANDS.get(cmd_name)
        if module is None:
            return None
        cmd: click.Command = importlib.import_module(module).command
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wolfpack")
def cli() -> None:
    """Wolfpack: a failover cluster service with verified state machines."""


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="wolfpack", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except WolfpackError as exc:
        click.echo(f"wolfpack: {exc}", err=True)
        sys.exit(1)
