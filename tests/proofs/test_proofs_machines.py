"""Done-means 1: every machine and composed model is verified, for all depths."""

import pytest

from wolfpack.proofs.models import registry, select
from wolfpack.proofs.results import PROVED
from wolfpack.proofs.run import check_model
from wolfpack.proofs.timing import default_config
from wolfpack.proofs.timing_proof import prove_all
from wolfpack.spec import all_specs

MODELS = select(())
TABLE_CHECKS = {"determinism", "completeness", "reachability", "no_dead_end"}
INDUCTION = ("inductive", "k-induction k=", "spacer")


@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_every_check_of_every_model_is_proved(model) -> None:
    results = check_model(model)
    not_proved = [(r.prop, r.method, r.result, r.detail) for r in results if r.result != PROVED]
    assert not not_proved
    props = {r.prop for r in results}
    if not model.is_product:
        assert props >= TABLE_CHECKS
        assert {i.name for i in model.spec.invariants} <= props
        assert {f"{d.name}_total_and_unambiguous" for d in model.spec.derived} <= props
    else:
        assert {"reachability", *(p.name for p in model.properties if p.reported)} <= props
    for r in results:
        if r.prop not in TABLE_CHECKS and not r.prop.endswith("_total_and_unambiguous"):
            assert r.method.startswith(INDUCTION), f"{r.prop} only {r.method}: not proved for all depths"


def test_the_models_cover_every_spec_and_the_group_up_to_four_resources() -> None:
    names = {c.spec.name for models in registry().values() for m in models for c in m.components}
    assert names == set(all_specs())
    assert [m.name for m in registry()["group"]] == ["group[n=1]", "group[n=2]", "group[n=3]", "group[n=4]"]
    (ownership,) = registry()["ownership"]
    assert [c.name for c in ownership.components] == ["group", "node0", "node1", "node2"]


def test_the_default_timings_meet_every_obligation() -> None:
    assert all(r.result == PROVED for r in prove_all(default_config()))
