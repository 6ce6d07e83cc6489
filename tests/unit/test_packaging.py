"""A normal (non-editable) install exposes only ``wolfpack.*``."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_normal_install_imports_only_under_wolfpack(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    probe = ("import wolfpack.spec, wolfpack.machines, wolfpack.proofs, wolfpack.runtime, wolfpack.hw; "
             "print(wolfpack.spec.__file__)")
    ok = subprocess.run([sys.executable, "-c", probe], cwd=work, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().startswith(str(target))
    for generic in ("machines", "spec", "runtime", "proofs", "hw", "cli"):
        bad = subprocess.run([sys.executable, "-c", f"import {generic}"], cwd=work, env=env,
                             capture_output=True, text=True)
        assert bad.returncode != 0, f"'import {generic}' must fail outside the repository"


def test_runtime_imports_stay_light() -> None:
    """The machines (what the daemon runs) must not pull in z3 or hypothesis."""
    probe = ("import sys, wolfpack.machines, wolfpack.spec; "
             "import wolfpack.spec.group, wolfpack.spec.node, wolfpack.spec.resource; "
             "bad = [m for m in ('z3', 'hypothesis') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
