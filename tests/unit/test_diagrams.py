"""``wolfpack diagram``: every state and transition of each spec is drawn, and ``--check`` catches stale files."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from wolfpack import diagrams
from wolfpack.cli import cli, main
from wolfpack.errors import WolfpackError
from wolfpack.spec import all_specs, get
from wolfpack.spec.core import Spec

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "diagrams"
NAMES = list(all_specs())

_EDGE_LINE = re.compile(r'^\t("?)(?P<src>[^"\s]+)\1 -> ("?)(?P<dst>[^"\s]+)\3 \[(?P<attrs>.*)\]$')
_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s\]]+)')


def parse_edges(dot: str) -> list[dict[str, str]]:
    """Every edge statement of a DOT text as {src, dst, attribute: value}."""
    found = []
    for line in dot.splitlines():
        match = _EDGE_LINE.match(line)
        if match:
            attrs = {k: v.strip('"') for k, v in _ATTR.findall(match.group("attrs"))}
            found.append({"src": match.group("src"), "dst": match.group("dst"), **attrs})
    return found


def expected_edges(spec: Spec) -> Counter[tuple[str, str, str, str]]:
    """(source, destination, label, style) for every (row, source) pair, straight from the table."""
    rows: Counter[tuple[str, str, str, str]] = Counter()
    for t in spec.transitions:
        label = t.trigger if t.guard is None else f"{t.trigger} [{t.guard.__name__}]"
        for source in t.source:
            dest = source if t.dest is None else t.dest
            rows[(source, dest, label, "dashed" if t.dest is None else "solid")] += 1
    return rows


def pairs(spec: Spec) -> int:
    return sum(len(t.source) for t in spec.transitions)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One CLI run rendering every machine as SVG (rendering is the slow part)."""
    out = tmp_path_factory.mktemp("diagrams")
    result = CliRunner().invoke(cli, ["diagram", *NAMES, "--format", "svg", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


# --- DOT -------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_dot_draws_one_edge_per_row_and_source_state(name: str) -> None:
    spec = get(name)
    edges = [e for e in parse_edges(diagrams.dot_source(spec)) if e["src"] != "__initial__"]
    assert len(edges) == pairs(spec)
    drawn = Counter((e["src"], e["dst"], e.get("label", ""), e.get("style", "")) for e in edges)
    assert drawn == expected_edges(spec)


@pytest.mark.parametrize("name", NAMES)
def test_dot_has_every_state_and_marks_the_initial_one(name: str) -> None:
    spec = get(name)
    dot = diagrams.dot_source(spec)
    for state in spec.states:
        assert re.search(rf"^\t{state} \[", dot, re.MULTILINE), state
    initial = [e for e in parse_edges(dot) if e["src"] == "__initial__"]
    assert [e["dst"] for e in initial] == [spec.initial]
    assert re.search(r"^\t__initial__ \[.*shape=point", dot, re.MULTILINE)


def test_final_states_get_a_double_border() -> None:
    spec = get("node")
    dot = diagrams.dot_source(dataclasses.replace(spec, final_states=("Evicted",)))
    assert re.search(r"^\tEvicted \[.*peripheries=2", dot, re.MULTILINE)
    assert "peripheries" not in diagrams.dot_source(spec)


def test_rows_that_differ_only_in_guard_stay_separate_edges() -> None:
    edges = parse_edges(diagrams.dot_source(get("node")))
    loops = {e["label"] for e in edges if e["src"] == e["dst"] == "Online" and e["label"].startswith("regroup_")}
    assert loops == {"regroup_survived [newer_epoch]", "regroup_survived [stale_epoch]"}


def test_guards_are_shown_in_brackets_after_the_trigger() -> None:
    labels = {e.get("label") for e in parse_edges(diagrams.dot_source(get("resource")))}
    assert "is_alive_failed [restart_allowed]" in labels
    assert "is_alive_failed [restart_exhausted]" in labels


def test_dot_source_is_the_same_for_an_equal_spec_built_again() -> None:
    from wolfpack.spec.group import make_group_spec

    assert diagrams.dot_source(make_group_spec(3)) == diagrams.dot_source(make_group_spec(3))


# --- SVG and the CLI ---------------------------------------------------------------


def test_cli_writes_an_svg_and_its_dot_per_machine(rendered: tuple[Path, str]) -> None:
    out, output = rendered
    lines = output.strip().splitlines()
    assert lines[-1] == f"diagrams written to {out}"
    listed = [Path(line) for line in lines[:-1]]
    assert sorted(p.name for p in listed) == sorted(f"{n}.{ext}" for n in NAMES for ext in ("dot", "svg"))
    assert all(p.is_file() for p in listed)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in listed)


@pytest.mark.parametrize("name", NAMES)
def test_svg_shows_every_state_trigger_and_guard(rendered: tuple[Path, str], name: str) -> None:
    spec = get(name)
    text = (rendered[0] / f"{name}.svg").read_text()
    for state in spec.states:
        assert f"<title>{state}</title>" in text
    for t in spec.transitions:
        assert t.trigger in text
        if t.guard_name:
            assert f"[{t.guard_name}]" in text
    assert text.count('class="edge"') == pairs(spec) + 1  # + the arrow into the initial state


@pytest.mark.parametrize("name", NAMES)
def test_svg_carries_the_hash_of_its_dot(rendered: tuple[Path, str], name: str) -> None:
    out = rendered[0]
    dot = (out / f"{name}.dot").read_text()
    svg = (out / f"{name}.svg").read_text()
    assert dot == diagrams.dot_source(get(name))
    assert svg.startswith("<?xml")
    assert svg.splitlines()[1] == f"<!-- wolfpack-spec-sha256: {diagrams.source_hash(dot)} -->"


def test_stamp_goes_first_when_there_is_no_xml_declaration() -> None:
    stamped = diagrams.stamp("<svg/>\n", "ab" * 32)
    assert stamped.splitlines()[0] == f"<!-- wolfpack-spec-sha256: {'ab' * 32} -->"
    assert diagrams.stamped_hash(stamped) == "ab" * 32
    assert diagrams.stamped_hash("<svg/>") is None


def test_png_and_dot_formats(tmp_path: Path) -> None:
    png = diagrams.render(get("node"), "png", tmp_path)
    assert png.read_bytes().startswith(b"\x89PNG")
    dot = diagrams.render(get("node"), "dot", tmp_path / "dot-only")
    assert [p.name for p in dot.parent.iterdir()] == ["node.dot"]


def test_missing_graphviz_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(WolfpackError, match="apt-get install graphviz"):
        diagrams.render(get("node"), "svg", tmp_path / "out")
    assert not (tmp_path / "out" / "node.dot").exists()  # no half-written pair
    assert diagrams.render(get("node"), "dot", tmp_path / "out").is_file()  # dot needs no Graphviz


def test_unknown_machine_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["diagram", "nosuchmachine", "--format", "dot", "--out", "unused"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "unknown machine 'nosuchmachine'" in err and "Traceback" not in err


# --- --check -----------------------------------------------------------------------


def test_committed_diagrams_are_up_to_date() -> None:
    assert diagrams.check(all_specs(), COMMITTED) == []
    result = CliRunner().invoke(cli, ["diagram", "--check", "--out", str(COMMITTED)])
    assert result.exit_code == 0, result.output


def test_check_fails_when_a_transition_is_dropped() -> None:
    spec = get("resource")
    edited = dataclasses.replace(spec, transitions=spec.transitions[:-1])
    problems = diagrams.check([edited], COMMITTED)
    assert len(problems) == 2
    assert "resource.dot is stale" in problems[0] and "resource.svg is stale" in problems[1]


def test_check_fails_when_a_guard_is_renamed() -> None:
    spec = get("node")
    index = next(i for i, t in enumerate(spec.transitions) if t.guard is not None)
    original = spec.transitions[index].guard
    assert original is not None

    def renamed_guard(r: object, e: object) -> object:
        return original(r, e)

    rows = list(spec.transitions)
    rows[index] = dataclasses.replace(rows[index], guard=renamed_guard)
    edited = dataclasses.replace(spec, transitions=tuple(rows))
    assert "renamed_guard" in diagrams.dot_source(edited)
    assert len(diagrams.check([edited], COMMITTED)) == 2


def test_cli_check_fails_on_a_corrupted_dot_and_names_the_fix(tmp_path: Path) -> None:
    out = tmp_path / "diagrams"
    shutil.copytree(COMMITTED, out)
    runner = CliRunner()
    assert runner.invoke(cli, ["diagram", "--check", "--out", str(out)]).exit_code == 0
    group_dot = out / "group.dot"
    group_dot.write_text(group_dot.read_text().replace("Failing", "Falling"))
    result = runner.invoke(cli, ["diagram", "--check", "--out", str(out)])
    assert result.exit_code == 1
    assert f"{group_dot} is stale" in result.stderr
    assert "resource.dot" not in result.stderr and "group.svg" not in result.stderr
    assert f"wolfpack diagram --format svg --out {out}" in result.stderr


def test_check_catches_a_wrong_or_missing_svg_hash(rendered: tuple[Path, str], tmp_path: Path) -> None:
    shutil.copytree(rendered[0], tmp_path, dirs_exist_ok=True)
    assert diagrams.check(all_specs(), tmp_path) == []
    svg = tmp_path / "node.svg"
    text = svg.read_text()
    svg.write_text(re.sub(r"sha256: [0-9a-f]{64}", "sha256: " + "0" * 64, text))
    assert diagrams.check([get("node")], tmp_path) == [f"{svg} is stale: it was drawn from an older node spec"]
    svg.write_text(re.sub(r"<!-- wolfpack-spec-sha256: [0-9a-f]{64} -->\n", "", text))
    [problem] = diagrams.check([get("node")], tmp_path)
    assert "no wolfpack-spec-sha256 comment" in problem
    svg.unlink()
    assert diagrams.check([get("node")], tmp_path) == [f"{svg} is missing"]
