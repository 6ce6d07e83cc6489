"""``wolfpack trace FILE...``: replay daemons' transition logs through the machines."""

from __future__ import annotations

from pathlib import Path

import click

from wolfpack.errors import WolfpackError


@click.command("trace")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
def command(files: tuple[Path, ...]) -> None:
    """Replay transition logs (DATA_DIR/transitions.ndjson) through the machines built from the specs.

    Exits 1 when a log is not a legal run: a step the machines would not take, or take elsewhere.
    """
    from wolfpack.runtime.daemon.trace import replay_file

    failed = False
    for path in files:
        steps, problems = replay_file(path)
        if problems:
            failed = True
            click.echo(f"{path}: {len(problems)} step(s) of {steps} are not legal:")
            for p in problems[:50]:
                click.echo(f"  {p}")
        else:
            click.echo(f"{path}: {steps} steps replayed through the machines: a legal run")
    if failed:
        raise WolfpackError("a transition log is not a legal run of the machines")
