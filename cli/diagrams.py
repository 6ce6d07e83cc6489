"""State diagrams drawn from the specs (``wolfpack diagram``).

Everything here is derived from a :class:`~wolfpack.spec.core.Spec`; no
transition is written down a second time.  One node per state, one edge per
(transition row, source state) labelled ``trigger [guard]``; internal
transitions (``dest`` None) are dashed self-loops.  The initial state is
entered from a small black point, final states have a double border.

The DOT source is deterministic (spec order, no timestamps), so it is
committed in ``docs/diagrams/`` and compared byte for byte by ``--check``.
The rendered SVG depends on the Graphviz version, so it is not compared;
instead it carries the SHA-256 of the DOT it was drawn from in an XML comment
(:data:`HASH_MARK`), and ``--check`` compares that hash.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import graphviz

from wolfpack.errors import WolfpackError
from wolfpack.spec.core import Spec

FORMATS = ("svg", "png", "dot")
DEFAULT_OUT = "docs/diagrams"
REGENERATE = "wolfpack diagram --format svg --out {out}"
HASH_MARK = "wolfpack-spec-sha256"
_HASH_RE = re.compile(rf"<!-- {HASH_MARK}: ([0-9a-f]{{64}}) -->")
_INITIAL_NODE = "__initial__"
_FONT = "Helvetica"
_LOOP_SIDES = ("n", "s")


@dataclass(frozen=True)
class Edge:
    """One arrow of a diagram: a transition row seen from one source state."""

    source: str
    target: str
    trigger: str
    guard: str | None
    internal: bool
    doc: str

    @property
    def label(self) -> str:
        return self.trigger if self.guard is None else f"{self.trigger} [{self.guard}]"


def edges(spec: Spec) -> list[Edge]:
    """Every (row, source) pair of the table, in table order."""
    return [
        Edge(source, t.target(source), t.trigger, t.guard_name, t.dest is None, t.doc)
        for t in spec.transitions
        for source in t.source
    ]


def digraph(spec: Spec) -> graphviz.Digraph:
    """The spec as a Graphviz graph (not yet rendered)."""
    g = graphviz.Digraph(
        name=spec.name,
        comment=f"{spec.name} machine, generated from wolfpack.spec by `wolfpack diagram`; do not edit",
    )
    g.attr(
        rankdir="LR",
        concentrate="false",
        nodesep=_nodesep(spec),
        ranksep="1.2",
        fontname=_FONT,
        fontsize="18",
        labelloc="t",
        label=f"{spec.name} machine",
    )
    g.attr("node", shape="box", style="rounded,filled", fillcolor="#eef3fb", fontname=_FONT, fontsize="14")
    g.attr("edge", fontname=_FONT, fontsize="10", arrowsize="0.7")
    g.node(_INITIAL_NODE, label="", shape="point", width="0.15", style="filled", fillcolor="black")
    for state in spec.states:
        extra = {"peripheries": "2"} if state in spec.final_states else {}
        g.node(state, label=state, tooltip=spec.state_docs.get(state, state), **extra)
    g.edge(_INITIAL_NODE, spec.initial, tooltip="initial state")
    loops: dict[str, int] = {}
    for e in edges(spec):
        ports = {}
        if e.source == e.target:
            # alternate self-loops above and below the state: one stack of loops is unreadable
            side = _LOOP_SIDES[loops.get(e.source, 0) % len(_LOOP_SIDES)]
            loops[e.source] = loops.get(e.source, 0) + 1
            ports = {"tailport": side, "headport": side}
        style = "dashed" if e.internal else "solid"
        g.edge(e.source, e.target, label=e.label, tooltip=e.doc or e.label, style=style, **ports)
    return g


def _nodesep(spec: Spec) -> str:
    """Room between states for the stacks of self-loop labels (dot does not reserve it in LR layouts)."""
    per_state: dict[str, int] = {}
    for e in edges(spec):
        if e.source == e.target:
            per_state[e.source] = per_state.get(e.source, 0) + 1
    stack = -(-max(per_state.values(), default=0) // len(_LOOP_SIDES))
    return f"{0.4 + 0.1 * stack:.1f}"


def dot_source(spec: Spec) -> str:
    """The DOT text of the spec's diagram (deterministic)."""
    return str(digraph(spec).source)


def source_hash(dot: str) -> str:
    return hashlib.sha256(dot.encode("utf-8")).hexdigest()


def svg(dot: str) -> str:
    """Render DOT to SVG text stamped with the hash of ``dot``."""
    text = _run_dot(dot, "svg").decode("utf-8")
    return stamp(text, source_hash(dot))


def stamp(svg_text: str, digest: str) -> str:
    """Insert the hash comment after the XML declaration (or at the top)."""
    mark = f"<!-- {HASH_MARK}: {digest} -->\n"
    if svg_text.startswith("<?xml"):
        end = svg_text.index("?>") + 2
        newline = 1 if svg_text[end : end + 1] == "\n" else 0
        return svg_text[: end + newline] + ("" if newline else "\n") + mark + svg_text[end + newline :]
    return mark + svg_text


def stamped_hash(svg_text: str) -> str | None:
    """The hash an SVG was stamped with, or None."""
    match = _HASH_RE.search(svg_text)
    return match.group(1) if match else None


def _run_dot(dot: str, fmt: str) -> bytes:
    try:
        out: bytes = graphviz.Source(dot).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise WolfpackError(
            f"cannot render {fmt}: the Graphviz program 'dot' is not on PATH; "
            "install Graphviz: apt-get install graphviz (or use --format dot, which needs nothing)"
        ) from None
    except (graphviz.CalledProcessError, subprocess.CalledProcessError) as exc:
        raise WolfpackError(
            f"Graphviz 'dot' failed to render {fmt}: {exc}; the generated DOT is at fault, please report it"
        ) from None
    return out


def render(spec: Spec, fmt: str, out_dir: Path | str) -> Path:
    """Write the spec's diagram into ``out_dir`` and return the file written.

    ``svg`` also writes the ``.dot`` it was drawn from beside it (the pair
    that ``--check`` verifies).  ``svg`` and ``png`` need Graphviz's ``dot``
    program; ``dot`` needs nothing.
    """
    if fmt not in FORMATS:
        raise WolfpackError(f"unknown diagram format {fmt!r}; choose from {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dot = dot_source(spec)
    target = out / f"{spec.name}.{fmt}"
    if fmt == "dot":
        _write_text(target, dot)
    elif fmt == "svg":
        text = svg(dot)  # render first: a missing `dot` must not leave a half-written pair
        _write_text(out / f"{spec.name}.dot", dot)
        _write_text(target, text)
    else:
        target.write_bytes(_run_dot(dot, fmt))
    return target


def _write_text(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8"))


def check(specs: Iterable[Spec] | Mapping[str, Spec], directory: Path | str) -> list[str]:
    """Problems with the committed diagrams of ``specs`` in ``directory``.

    A ``.dot`` must equal the DOT generated from the spec now; a ``.svg``
    must carry the hash of that DOT.  An empty list means up to date.
    """
    if isinstance(specs, Mapping):
        specs = specs.values()
    base = Path(directory)
    problems = []
    for spec in specs:
        dot = dot_source(spec)
        dot_path, svg_path = base / f"{spec.name}.dot", base / f"{spec.name}.svg"
        if not dot_path.is_file():
            problems.append(f"{dot_path} is missing")
        elif dot_path.read_bytes().decode("utf-8", errors="replace") != dot:
            problems.append(f"{dot_path} is stale: it differs from the {spec.name} spec")
        if not svg_path.is_file():
            problems.append(f"{svg_path} is missing")
        else:
            found = stamped_hash(svg_path.read_bytes().decode("utf-8", errors="replace"))
            if found is None:
                problems.append(f"{svg_path} has no {HASH_MARK} comment: it was not written by `wolfpack diagram`")
            elif found != source_hash(dot):
                problems.append(f"{svg_path} is stale: it was drawn from an older {spec.name} spec")
    return problems
