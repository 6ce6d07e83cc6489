"""``wolfpack diagram``: draw the state machines, or check the committed drawings."""

from __future__ import annotations

from pathlib import Path

import click

from wolfpack import diagrams
from wolfpack.spec import all_specs, get


@click.command("diagram")
@click.argument("machines", nargs=-1, metavar="[MACHINE]...")
@click.option("--format", "fmt", type=click.Choice(diagrams.FORMATS), default="svg", show_default=True,
              help="svg also writes the .dot it was drawn from; svg and png need Graphviz's dot program.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=diagrams.DEFAULT_OUT,
              show_default=True, help="Directory to write (or, with --check, to check).")
@click.option("--check", is_flag=True,
              help="Fail (exit 1) if the .dot/.svg files in --out are stale; write nothing.")
@click.pass_context
def command(ctx: click.Context, machines: tuple[str, ...], fmt: str, out_dir: Path, check: bool) -> None:
    """Draw the state diagrams of MACHINEs (default: all) from their specs."""
    specs = [get(name) for name in machines] if machines else list(all_specs().values())
    if check:
        problems = diagrams.check(specs, out_dir)
        if problems:
            click.echo(f"wolfpack: the diagrams in {out_dir} no longer match the specs:", err=True)
            for problem in problems:
                click.echo(f"  {problem}", err=True)
            click.echo(f"regenerate them with: {diagrams.REGENERATE.format(out=out_dir)}", err=True)
            ctx.exit(1)
        click.echo(f"diagrams in {out_dir} are up to date ({', '.join(s.name for s in specs)})")
        return
    for spec in specs:
        path = diagrams.render(spec, fmt, out_dir)
        if fmt == "svg":
            click.echo(str(path.with_suffix(".dot")))
        click.echo(str(path))
    click.echo(f"diagrams written to {out_dir}")
