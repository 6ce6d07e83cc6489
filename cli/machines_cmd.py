"""``wolfpack machines``: list the machines and their tables as text or JSON."""

from __future__ import annotations

import json
from typing import Any

import click

from wolfpack.spec import all_specs, get
from wolfpack.spec.core import Spec


def table(spec: Spec) -> dict[str, Any]:
    """The spec's table as plain data (what diagrams and docs show)."""
    return {
        "name": spec.name,
        "states": list(spec.states),
        "initial": spec.initial,
        "fields": [{"name": f.name, "param": f.param, "default": _plain(f.default), "doc": f.doc} for f in spec.fields],
        "events": [{"name": e.name, "args": [a.name for a in e.args], "doc": e.doc} for e in spec.events],
        "transitions": [
            {"trigger": t.trigger, "source": list(t.source), "dest": t.dest, "guard": t.guard_name,
             "effects": [eff.label() for eff in t.effects], "doc": t.doc}
            for t in spec.transitions
        ],
        "ignored": [{"trigger": i.trigger, "states": list(i.states), "reject": i.reject, "reason": i.reason}
                    for i in spec.ignored],
        "invariants": [{"name": i.name, "doc": i.doc} for i in spec.invariants],
    }


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else value


@click.command("machines")
@click.argument("names", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def command(names: tuple[str, ...], fmt: str) -> None:
    """Show the transition tables of MACHINES (default: all)."""
    specs = [get(n) for n in names] if names else list(all_specs().values())
    if fmt == "json":
        click.echo(json.dumps([table(s) for s in specs], indent=2))
        return
    for spec in specs:
        click.echo(f"{spec.name}: {len(spec.states)} states, {len(spec.transitions)} transitions, "
                   f"{len(spec.invariants)} invariants")
        for t in spec.transitions:
            guard = f" [{t.guard_name}]" if t.guard_name else ""
            click.echo(f"  {t.trigger}{guard}: {', '.join(t.source)} -> {t.dest or '(stay)'}")
