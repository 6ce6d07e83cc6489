"""Rendering the rows of ``wolfpack verify``: a table, stable JSON, the Markdown report."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from wolfpack.proofs import timing
from wolfpack.proofs.model import Model
from wolfpack.proofs.report_text import INTRO, JSON_SCHEMA, METHODS
from wolfpack.proofs.results import BOUNDED, FAILED, PROVED, Result

SCHEMA_VERSION = 1
COLUMNS = ("machine", "property", "method", "result", "time")
TIMING = "timing"


def summary(results: Sequence[Result], seconds: float) -> dict[str, Any]:
    """Counts by result; ``seconds`` is the wall time of the whole run (invariants proved
    together share one time, so the rows' times do not add up)."""
    return {
        "checks": len(results),
        "proved": sum(r.result == PROVED for r in results),
        "bounded": sum(r.result == BOUNDED for r in results),
        "failed": sum(r.result == FAILED for r in results),
        "seconds": round(seconds, 3),
    }


def table(results: Sequence[Result], seconds: float) -> str:
    rows = [(r.machine, r.prop, r.method, r.result, f"{r.seconds:.2f}s") for r in results]
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    s = summary(results, seconds)
    lines.append(f"{s['checks']} checks: {s['proved']} proved, {s['bounded']} bounded, {s['failed']} FAILED "
                 f"in {s['seconds']:.1f}s")
    obligations = [r for r in results if r.machine == TIMING and not r.failed]
    if obligations:
        lines.append("\ntiming obligations:")
        lines += [f"  {r.prop}: {r.detail}" for r in obligations]
    synthesised: dict[tuple[str, str], list[str]] = {}
    for r in results:
        if r.invariant:  # one joint invariant often proves several properties: print it once
            synthesised.setdefault((r.machine, r.invariant), []).append(r.prop)
    for (machine, invariant), props in synthesised.items():
        lines.append(f"\n{machine} {', '.join(props)}: Spacer's inductive invariant:\n    {invariant}")
    shown: set[int] = set()
    for r in results:
        if r.failed:
            lines.append(f"\nFAILED {r.machine} {r.prop}: {r.detail}")
            if r.run is not None:
                lines.append(r.run.text() if id(r.run) not in shown else "    (the counterexample above)")
                if r.story and id(r.run) not in shown:
                    lines.append("    as a simulator story (`wolfpack verify --stories DIR` saves it; run it with "
                                 "`wolfpack simulate`):")
                    lines += [f"      {line}" if line else "" for line in r.story.splitlines()]
                shown.add(id(r.run))
    return "\n".join(lines)


def as_json(results: Sequence[Result], seconds: float, config: Mapping[str, int], config_source: str | None) -> str:
    document = {
        "schema": SCHEMA_VERSION,
        "ok": not any(r.failed for r in results),
        "summary": summary(results, seconds),
        "config": {"source": config_source, "values": dict(config)},
        "results": [r.as_dict() for r in results],
    }
    return json.dumps(document, indent=2)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(results: Sequence[Result], models: Sequence[Model], config: Mapping[str, int],
             config_source: str | None) -> str:
    """The committed report: no timings, so it only changes when a result does."""
    s = summary(results, 0.0)
    out = [INTRO.strip(), ""]
    out += ["## Summary", "",
            f"{s['checks']} checks: {s['proved']} proved, {s['bounded']} bounded, {s['failed']} FAILED.", ""]
    out += ["## Models", "", "| model | what | components |", "|---|---|---|"]
    for m in models:
        comps = ", ".join(f"{c.name} ({c.spec.name})" if c.name != c.spec.name else c.name for c in m.components)
        out.append(f"| {m.name} | {_cell(m.doc)} | {comps} |")
    out += ["", "## Properties", "", "| model | property | meaning |", "|---|---|---|"]
    seen: set[tuple[str, str]] = set()
    for m in models:
        owner = m.name.split("[")[0]
        for p in m.all_properties():
            if p.reported and (owner, p.name) not in seen:
                seen.add((owner, p.name))
                out.append(f"| {owner} | `{p.name}` | {_cell(p.doc)} |")
    for m in models:
        if m.syncs:
            out += ["", f"Synchronisations of `{m.name}` (a follower that rejects the event blocks the step):", ""]
            out += [f"- {s.initiator} -> {s.follower}.{s.trigger}: {s.doc}" for s in m.syncs]
    out += ["", "## Results", "", "| machine | property | method | result | detail |", "|---|---|---|---|---|"]
    for r in results:
        out.append(f"| {r.machine} | {r.prop} | {r.method} | {r.result} | {_cell(r.detail)} |")
    spacer = sorted({r.machine for r in results if r.invariant})
    if spacer:
        # The invariant's text depends on the z3 version, so the committed report names the
        # models only; `wolfpack verify` prints the invariant itself.
        out += ["", "## Invariants synthesised by Spacer", "",
                "Spacer found an inductive invariant for " + ", ".join(f"`{m}`" for m in spacer)
                + "; `wolfpack verify` prints it."]
    failures = [r for r in results if r.failed and r.run is not None]
    if failures:
        out += ["", "## Counterexamples", ""]
        for r in failures:
            assert r.run is not None
            out += [f"### {r.machine} {r.prop}", "", "```", r.run.text(indent=""), "```", ""]
            if r.story:
                out += ["As a simulator story:", "", "```", r.story.rstrip(), "```", ""]
    out += ["", "## Timing configuration", "",
            f"Checked values ({config_source or 'Wolfpack defaults'}):", "",
            "| key | value | default | meaning |", "|---|---|---|---|"]
    for v in timing.VARIABLES:
        out.append(f"| `{v.name}` | {config[v.name]} | {v.default} | {v.doc} |")
    out += ["", "Obligations:", ""]
    out += [f"- `{o.name}`: `{o.text()}`: {o.why}" for o in timing.OBLIGATIONS]
    out += ["", METHODS.strip(), "", JSON_SCHEMA.strip(), ""]
    return "\n".join(out)
