"""Every DAG, dbt model, GX suite and model artefact has exactly one owning role."""

from __future__ import annotations

import json
import shutil

import pytest

from include.settings import get_settings
from include.tasks.owners import (
    Owned,
    dbt_model_owners,
    model_artefact_owners,
    ownership_map,
    problems,
)

pytestmark = pytest.mark.integration


def test_everything_in_the_repo_has_one_owner(data_dir) -> None:
    rows = ownership_map()
    kinds = {r.kind for r in rows}
    assert {"dag", "dbt_model", "gx_suite"} <= kinds
    assert problems(rows) == []
    owners = {(r.kind, r.name): r.owners for r in rows}
    assert owners[("dag", "recommender_train")] == ("DS",)
    assert owners[("dbt_model", "fct_sessions")] == ("DE",)
    assert owners[("dbt_model", "metrics_funnel_daily")] == ("DA",)
    assert owners[("gx_suite", "training_set")] == ("DS",)


def test_a_dbt_model_without_owner_is_caught(tmp_path) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(
        get_settings().dbt_project_dir,
        project,
        ignore=shutil.ignore_patterns("target", "logs", ".user.yml"),
    )
    scratch = project / "models" / "scratch"
    scratch.mkdir()
    (scratch / "scratch_orphan.sql").write_text("select 1 as x\n")
    rows = {r.name: r for r in dbt_model_owners(project)}
    assert rows["scratch_orphan"].problem == "no owner"
    assert rows["fct_sessions"].problem is None
    assert [p for p in problems(list(rows.values())) if "scratch_orphan" in p]


def test_two_owners_or_an_unknown_role_are_caught() -> None:
    assert Owned("dag", "x", ("DE", "DS"), "x.py").problem == "2 owners: DE, DS"
    assert Owned("dag", "x", ("BI",), "x.py").problem == "owner 'BI' is not one of DE/DS/DA"
    assert Owned("dag", "x", ("DA",), "x.py").problem is None


def test_model_artefacts_carry_their_owner(data_dir) -> None:
    models = get_settings().models_dir
    (models / "20260101T000000Z-aaaa").mkdir(parents=True)
    (models / "20260101T000000Z-aaaa" / "manifest.json").write_text(json.dumps({"owner": "DS"}))
    (models / "20260102T000000Z-bbbb").mkdir()
    rows = {r.name: r for r in model_artefact_owners()}
    assert rows["20260101T000000Z-aaaa"].problem is None
    assert rows["20260102T000000Z-bbbb"].problem == "no owner"
