"""``wolfpack verify``: prove the state machines and check timing obligations.

One row per (machine, property) with the method, the result and the time;
exit status 1 when anything FAILED, with the counterexample printed.  The
proof engine (z3) is imported only here and in ``wolfpack.proofs``.
"""

from __future__ import annotations

import difflib
import json
import time
from pathlib import Path

import click

from wolfpack.errors import WolfpackError


@click.command("verify")
@click.argument("machines", nargs=-1)
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="TOML file with timing values to check against the obligations (default: Wolfpack's defaults).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--report", "report_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the Markdown report (no timings) to this file, e.g. docs/verification.md.")
@click.option("--check", is_flag=True, help="With --report: do not write; exit 1 if the file is out of date.")
@click.option("--save-counterexample", "cex_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write every counterexample run to this JSON file (replayable through the live machines).")
@click.option("--stories", "stories_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Write each counterexample that has one as a simulator story (run it with `wolfpack simulate`).")
@click.option("--depth", type=click.IntRange(min=1), default=None,
              help="Steps of the bounded model checking of the message-level regroup (default: 6 for 3 nodes, "
                   "7 for 4 nodes).")
@click.option("--deep", is_flag=True,
              help="Also the checks that take minutes: the composed GUM of 4 nodes for all depths, the regroup "
                   "two steps deeper, and the regroup under disk quorum.")
@click.pass_context
def command(ctx: click.Context, machines: tuple[str, ...], config_path: Path | None, fmt: str,
            report_path: Path | None, check: bool, cex_path: Path | None, stories_dir: Path | None,
            depth: int | None, deep: bool) -> None:
    """Prove MACHINES (default: all; `wolfpack verify --help` lists them).

    Checks determinism, completeness, reachability, dead ends and derived
    functions of each machine, proves every invariant for all depths
    (induction, k-induction or Spacer; "bounded" if only bounded model
    checking succeeded, with its depth), checks the composed models
    (GUM, the message-level regroup, membership + quorum + ownership),
    and checks the timing obligations of the configuration.
    """
    from wolfpack.proofs import timing
    from wolfpack.proofs.checks import run_checks
    from wolfpack.proofs.models import select
    from wolfpack.proofs.report import as_json, markdown, table
    from wolfpack.proofs.run import check_models
    from wolfpack.proofs.timing_proof import prove_all

    if check and report_path is None:
        raise click.UsageError("--check compares a report with a fresh run; give the file with --report FILE")
    config = timing.load(config_path) if config_path is not None else timing.default_config()
    source = None if config_path is None else str(config_path)
    models = select(machines)
    started = time.perf_counter()
    results = check_models(models)
    composed, composed_models = run_checks(machines, depth, deep)
    results += composed
    models = [*models, *composed_models]
    if not machines or "timing" in machines:
        results += prove_all(config)
    seconds = time.perf_counter() - started

    click.echo(as_json(results, seconds, config, source) if fmt == "json" else table(results, seconds))

    if stories_dir is not None:
        stories = {(r.machine, tuple(r.run.violated) if r.run else ()): r.story for r in results if r.story}
        stories_dir.mkdir(parents=True, exist_ok=True)
        for (machine, violated), story in stories.items():
            path = stories_dir / f"{machine}-{'-'.join(violated)}.sim".replace("[", "_").replace("]", "").replace(
                ",", "_").replace("=", "")
            path.write_text(story)
        if fmt == "table":
            click.echo(f"\n{len(stories)} story(ies) written to {stories_dir}")

    if cex_path is not None:
        runs = [r.run.as_dict() for r in results if r.run is not None]
        cex_path.write_text(json.dumps(runs, indent=2) + "\n")
        if fmt == "table":
            click.echo(f"\n{len(runs)} counterexample(s) written to {cex_path}")

    stale = False
    if report_path is not None:
        text = markdown(results, models, config, source)
        if check:
            stale = _compare(report_path, text, machines)
        else:
            report_path.write_text(text)
    if stale or any(r.failed for r in results):
        ctx.exit(1)


def _compare(path: Path, text: str, machines: tuple[str, ...]) -> bool:
    try:
        current = path.read_text()
    except OSError as exc:
        raise WolfpackError(f"cannot read the report {path}: {exc.strerror}; "
                            f"create it with: wolfpack verify --report {path}") from exc
    if current == text:
        return False
    diff = list(difflib.unified_diff(current.splitlines(), text.splitlines(), str(path), "fresh run", lineterm=""))
    again = " ".join(("wolfpack verify", *machines, "--report", str(path)))
    click.echo(f"\n{path} is out of date; regenerate it with `{again}` and commit it:", err=True)
    click.echo("\n".join(diff[:40]) + ("\n..." if len(diff) > 40 else ""), err=True)
    return True
