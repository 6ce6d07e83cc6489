"""Timing of ``wolfpack verify``: per check, per model, and the whole command.

Run: ``.venv/bin/python bench/bench_verify.py [--repeat N]``.  Figures are
printed, not asserted (the machine is shared).  Each model is checked N
times; the table shows the median time of each check (invariants proved
together share one time), then each model's wall time and the end-to-end
time of the command itself (interpreter start, imports, all models, timing).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from wolfpack.proofs.models import select
from wolfpack.proofs.run import check_model
from wolfpack.proofs.timing import default_config
from wolfpack.proofs.timing_proof import prove_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat

    per_check: dict[tuple[str, str], list[float]] = defaultdict(list)
    methods: dict[tuple[str, str], str] = {}
    per_model: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeat):
        for model in select(()):
            started = time.perf_counter()
            for r in check_model(model):
                per_check[(r.machine, r.prop)].append(r.seconds)
                methods[(r.machine, r.prop)] = f"{r.method} ({r.result})"
            per_model[model.name].append(time.perf_counter() - started)
        started = time.perf_counter()
        for r in prove_all(default_config()):
            per_check[(r.machine, r.prop)].append(r.seconds)
            methods[(r.machine, r.prop)] = f"{r.method} ({r.result})"
        per_model["timing"].append(time.perf_counter() - started)

    print(f"per check, median of {repeat} run(s):")
    print(f"  {'machine':12} {'property':36} {'method':26} {'seconds':>8}")
    for (machine, prop), times in per_check.items():
        print(f"  {machine:12} {prop:36} {methods[(machine, prop)]:26} {statistics.median(times):8.3f}")
    print("\nper model (wall, median):")
    for name, times in per_model.items():
        print(f"  {name:12} {statistics.median(times):7.2f}s")
    print(f"  {'all models':12} {sum(statistics.median(t) for t in per_model.values()):7.2f}s")

    exe = Path(sys.executable).with_name("wolfpack")
    started = time.perf_counter()
    done = subprocess.run([str(exe), "verify"], capture_output=True, text=True)
    wall = time.perf_counter() - started
    summary = next((line for line in done.stdout.splitlines() if " checks: " in line), done.stderr.strip())
    print(f"\n`wolfpack verify` end to end: {wall:.2f}s (exit status {done.returncode}); {summary}")


if __name__ == "__main__":
    main()
