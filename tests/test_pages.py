"""Every HTML page comes from a Jinja2 template: rendering, escaping, number formats.

Pages are tested on their data (the context dicts) in each page's own test file; here the
shared renderer: each template renders, hostile strings show as text, and no Python module
builds HTML by hand any more.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from include.reporting import pages

REPO_ROOT = Path(__file__).resolve().parents[1]
HOSTILE = '<script>alert("x")</script>'


def test_numbers_are_formatted_as_what_they_are() -> None:
    assert pages.fmt_int(2897.0) == "2,897"  # a user count arriving as a float
    assert pages.fmt_num(3.0) == "3"  # an epoch
    assert pages.fmt_num(0.123456) == "0.1235"
    assert pages.fmt_num(1234.5678) == "1,234.6"
    assert pages.fmt_num(float("nan")) == pages.MISSING
    assert pages.fmt_num(True) == "True"
    assert pages.fmt_pct(0.375) == "37.5%"
    assert pages.fmt_pct(None) == pages.MISSING
    assert pages.fmt(10.0, "days") == "10.0" and pages.fmt(15, "money") == "15.00"
    assert pages.fmt("2024-03-04T00:00:00", "date") == "2024-03-04"


def test_owners_page_escapes_hostile_names(tmp_path: Path) -> None:
    from include.tasks.owners import Owned, page_context

    rows = [Owned("dag", HOSTILE, ("DE",), "x.py"), Owned("dag", "y", (), "y.py")]
    context = page_context(rows)
    assert [r["check"] for r in context["rows"]] == ["ok", "no owner"]
    assert [r["status"] for r in context["rows"]] == ["ok", "bad"]
    assert context["counts"] == {"DE": 1, "DS": 0, "DA": 0}
    out = pages.write_page(tmp_path / "owners.html", "owners.html", **context)
    text = out.read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "<style>" in text and "table-wrap" in text  # the one stylesheet, inlined


def test_an_undefined_name_in_a_template_fails_the_render() -> None:
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        pages.render("owners.html", rows=[])  # no title, counts, roles


#: Files whose HTML-looking strings are data, not pages.
NOT_PAGES = {
    "include/simulator/config.py": "a broken collector's 502 page, one of the garbage lines "
    "the simulator injects into the landing files",
}
HAND_HTML = re.compile(r"html\.escape|<html|<table|<tr\b|<td\b|<!doctype", re.IGNORECASE)


def test_no_python_module_builds_html_by_hand() -> None:
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{n}"
        for folder in ("include", "recsys", "expectations")
        for path in sorted((REPO_ROOT / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if HAND_HTML.search(line) and str(path.relative_to(REPO_ROOT)) not in NOT_PAGES
    ]
    assert offenders == [], "render these with include/reporting/pages.py and a template"


def test_data_quality_overview_escapes_and_orders_suites(tmp_path: Path) -> None:
    from expectations.overview import overview_context, record_result

    entry = {
        "suite": "raw_events",
        "asset": HOSTILE,
        "owner_role": "DE",
        "success": False,
        "n_expectations": 40,
        "n_critical_failures": 1,
        "n_warnings": 0,
        "n_rows": 2897,
        "validated_at": "2026-12-06 17:00:00",
        "run_name": "manual__1",
        "docs_path": str(tmp_path / "data_docs" / "validations" / "x.html"),
        "critical_failures": [
            {"expectation": "expect_x", "column": "item_id", "observed_value": 0.123456}
        ],
        "warnings": [],
    }
    out = record_result(tmp_path, entry)
    context = overview_context({"raw_events": entry}, tmp_path)
    [row] = context["rows"]
    assert (row["status"], row["status_class"]) == ("FAILED", "failed")
    assert row["docs_href"] == "data_docs/validations/x.html"
    assert context["failures"][0]["items"][0]["observed"] == "0.1235"
    text = out.read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text and "2,897" in text


def _evaluation_data(model_name: str = "lightfm") -> dict:
    import pandas as pd

    from recsys.report import report_data

    rows = []
    for model in (model_name, "popularity", "item_knn"):
        for seg in ("all", "cold"):
            same = seg == "cold" and model != model_name  # baselines blind to cold items
            rows.append(
                {
                    "model": model,
                    "segment": seg,
                    "n_users": 2897.0,
                    "n_items": 40,
                    "ndcg@10": 0.0 if same else 0.1 + 0.01 * len(model),
                    "recall@20": 0.0 if same else 0.2,
                    "fit_s": 1.0 + len(model),  # differs: not a figure of the ranking
                }
            )
    dod = {
        "passed": True,
        "candidate": model_name,
        "clauses": [
            {"id": "vs_popularity", "status": "pass", "observed": 0.2, "required": 0.1,
             "margin": 0.1, "margin_pct": 100.0, "owner": "DS", "detail": "x",
             "ratio": 2.0, "ci_low": 0.15, "ci_high": 0.25, "kind": "relative"},
        ],
        "considered": [{"candidate": model_name, "passed": True, "ndcg_at_10": 0.2, "failed": []}],
    }  # fmt: skip
    return report_data(
        pd.DataFrame(rows),
        dod,
        learning_curve=[{"epoch": 1.0, "validation_ndcg@10": 0.1}, {"epoch": 2, "v": 0.2}][:1],
        best_epoch=1,
        blend_search=[{"weight": 0.5, "self_weight": 0.0, "als_weight": a, "validation_ndcg@10": 0.1}
                      for a in (0.0, 0.2)],
        snapshot={"users": 2897},
        version="v1",
    )  # fmt: skip


def test_evaluation_data_collapses_identical_cold_baselines_and_keeps_counts_whole() -> None:
    from include.reporting.evaluation import page_context

    data = _evaluation_data()
    cold = next(s for s in data["segments"] if s["segment"] == "cold")
    assert [(r["model"], r["n_models"]) for r in cold["rows"]] == [
        ("lightfm", 1),
        ("popularity, item_knn", 2),
    ]
    assert cold["n_collapsed"] == 1
    context = page_context(data)
    # the blend search tried each ALS share at one weight: no chart of lone points, a table
    assert context["blend_image"] is None and len(context["blend_search"]) == 2
    kinds = {key: kind for key, _, kind in context["metric_table_columns"]}
    assert kinds["n_users"] == kinds["n_items"] == kinds["n_models"] == "int"
    assert {key for key, _, _ in context["clause_columns"]} >= {"ci_low", "ci_high", "ratio"}
    assert dict((k, kind) for k, _, kind in context["curve_columns"])["epoch"] == "int"
    # searched weights are parameters: 32 and 0.35, not 32.0000 and 128.0
    assert dict((k, kind) for k, _, kind in context["blend_columns"])["als_weight"] == "num"


def test_evaluation_page_shows_a_count_clause_and_snapshot_counts_whole() -> None:
    from include.reporting.evaluation import render_report

    data = _evaluation_data()
    data["clauses"].append(
        {"id": "enough_users_evaluated", "status": "pass", "observed": 2888.0,
         "required": 100.0, "margin": 2788.0, "margin_pct": 2788.0, "owner": "DE",
         "detail": "n_users[lightfm, all] >= 100"}
    )  # fmt: skip
    data["snapshot"] = [{"fact": "events_rows", "value": "247126"}, {"fact": "x", "value": "7a"}]
    text = " ".join(re.sub(r"<[^>]+>", " ", render_report(data)).split())
    assert "enough_users_evaluated pass 2,888 100 2,788 2,788" in text
    assert "events_rows 247,126" in text and "x 7a" in text
    assert "2,888.0" not in text and "2,788.0" not in text


def test_evaluation_page_escapes_and_formats(tmp_path: Path) -> None:
    from include.reporting.evaluation import render_report

    text = render_report(_evaluation_data(HOSTILE))
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "2,897" in text and "2,897.0" not in text  # a user count as a whole number
    assert "cannot rank items launched after T" in text  # the merged cold rows are explained
    assert "95% CI low" in text


def test_monitoring_page_escapes_a_hostile_message() -> None:
    from datetime import date, datetime

    import pandas as pd

    from include import monitoring

    checks = pd.DataFrame(
        [
            {"monitor": "data", "metric": "volume_z", "dimension": HOSTILE, "value": 4.2,
             "threshold": 3.0, "status": monitoring.ALERT, "message": HOSTILE,
             "day": date(2029, 1, 2), "measured_at": datetime(2026, 12, 6, 17, 0)},
        ]
    )  # fmt: skip
    text = pages.render("monitoring.html", **monitoring.page_context(checks))
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "2029-01-02" in text and "2026-12-06 17:00:00" in text


def _business_context(experiments: list[dict]) -> dict:
    no_range = dict.fromkeys(
        ["conversion", "time-to-return", "retention", "funnel", "recommendation-impact",
         "experiment", "lapsed-customers"]
    )  # fmt: skip
    return {
        "title": "Trasos business metrics",
        "manifest": {"export_id": "x", "generated_at": "now", "rows": {}},
        "dbt_select": "path:models/marts/metrics",
        "headline": {"non_customer_conversion_rate": 0.375},
        "lapsed_days": 14,
        "n_lapsed": 2,
        "n_contactable": 2897.0,
        "lapsed_name": "lapsed.csv",
        "lapsed_href": "lapsed.csv",
        "glossary": {HOSTILE: HOSTILE},
        "ranges": {**no_range, "experiment": ("2024-03-18", "2024-03-24") if experiments else None},
        "charts": no_range,
        "definitions": {**{k: [] for k in no_range}, "headline": []},
        "tables": {
            "by_platform": [{"platform": HOSTILE, "n_visitors": 3.0}],
            "by_cohort": [],
            "funnel_totals": [],
            "impact": [],
        },
        "experiments": experiments,
        "exports": [],
    }


def test_business_page_escapes_hostile_mart_values() -> None:
    text = pages.render("business.html", **_business_context([]))
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "37.5%" in text and "2 of 2,897" in text
    # no experiment in the data: the section says so instead of failing to render
    assert "No experiment in this data" in text


def test_business_page_shows_an_experiment() -> None:
    """One experiment, values as the marts give them (a metric with no interval: n too small)."""
    from include.reporting.business import verdict

    srm = {"n_control": 98.0, "n_treatment": 902.0, "observed_control_share": 0.098,
           "configured_control_share": 0.1, "chi_square": 0.044444, "srm_flagged": False}  # fmt: skip
    conversion = {
        "metric": "new_visitor_conversion", "metric_order": 1, "n_control": 98.0,
        "n_treatment": 902.0, "control_value": 0.1, "treatment_value": 0.15, "uplift_abs": 0.05,
        "uplift_abs_ci_low": 0.01, "uplift_abs_ci_high": 0.09, "uplift_rel": 0.5,
        "uplift_rel_ci_low": 0.1, "uplift_rel_ci_high": 0.9, "is_significant": True,
    }  # fmt: skip
    median = {
        "metric": "median_days_to_return", "metric_order": 3, "n_control": 0.0,
        "n_treatment": 4.0, "control_value": None, "treatment_value": 2.5, "uplift_abs": None,
        "uplift_abs_ci_low": None, "uplift_abs_ci_high": None, "uplift_rel": None,
        "uplift_rel_ci_low": None, "uplift_rel_ci_high": None, "is_significant": None,
    }  # fmt: skip
    metrics = [
        {**m, "verdict": verdict(m, srm_flagged=False), "chart": None} for m in (conversion, median)
    ]
    experiment = {"experiment_id": HOSTILE, "srm": srm, "metrics": metrics, "variants": []}
    text = pages.render("business.html", **_business_context([experiment]))
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "No experiment in this data" not in text
    assert "98 control / 902 treatment" in text and "no sample-ratio mismatch" in text
    # 0.15 - 0.10 by hand: +0.05 absolute, +50 % relative, interval 0.01 to 0.09
    assert "Yes, it worked:" in text and "50.0%" in text
    assert "Not enough data in one of the variants." in text
    for word in ("None", "nan", "null"):
        assert f">{word}<" not in text, word


def test_a_merged_row_shows_no_fit_time_of_one_of_its_models() -> None:
    cold = next(s for s in _evaluation_data()["segments"] if s["segment"] == "cold")
    assert [r["fit_s"] for r in cold["rows"]] == [8.0, None]  # lightfm: 1 + 7 characters


def test_evaluation_page_shows_the_session_table(tmp_path: Path) -> None:
    import json

    from include.reporting.evaluation import publish_report

    report = tmp_path / "report.json"
    report.write_text(json.dumps(_evaluation_data("x")), encoding="utf-8")
    metrics = {
        "candidate": "session_stan",
        "n_test_sessions": 1234,
        "split_at": "2026-01-10T00:00:00+00:00",
        "models": {
            "cooccurrence": {"hr@20": 0.2, "mrr@20": 0.1},
            "session_stan": {"hr@20": 0.25, "mrr@20": 0.1},
        },
        "clause": {"id": "session_hr_vs_cooccurrence", "status": "pass", "observed": 0.25,
                   "required": 0.22, "n_test_sessions": 1234},
    }  # fmt: skip
    text = publish_report(report, tmp_path / "out", "v1", session=metrics).read_text()
    assert "Session model (anonymous visitors)" in text and "1,234" in text
    # session_stan's HR@20 is 0.25 / 0.2 = 1.25x co-occurrence's, its MRR 1x
    assert '<td class="metric">1.2500</td>' in text
    assert '<td class="metric">1.0000</td>' in text
    without = publish_report(report, tmp_path / "out", "v2").read_text()
    assert "Session model" not in without
