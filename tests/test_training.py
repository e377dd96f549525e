"""recsys.plan and include.tasks.training: the DAG's time split (histories of months, weeks, hours) and its messages."""

from __future__ import annotations

import pandas as pd
import pytest

from include.tasks.training import clause_text
from recsys.config import DEFAULT_PIPELINE
from recsys.plan import quantile_split, training_plan


def events_every(minutes: int, n: int, start: str = "2024-03-01") -> pd.DataFrame:
    at = pd.Timestamp(start) + pd.to_timedelta([i * minutes for i in range(n)], unit="min")
    return pd.DataFrame({"user_id": "u", "item_id": "i", "event_type": "purchase", "event_at": at})


def test_a_long_history_keeps_the_default_split():
    config, split_at = training_plan(events_every(24 * 60, 43))  # 42 days
    assert config is DEFAULT_PIPELINE and split_at is None


def test_a_month_gets_whole_day_windows_of_a_quarter_and_an_eighth():
    config, split_at = training_plan(events_every(24 * 60, 31))  # 30 days
    assert (config.split.test_days, config.split.validation_days) == (7, 3)
    assert split_at is None


def test_hours_of_events_split_at_the_quantile_of_the_last_fifth():
    # 181 events, one a minute for 3 hours: the 0.8 quantile is minute 144
    ev = events_every(1, 181)
    config, split_at = training_plan(ev)
    assert split_at == pd.Timestamp("2024-03-01 02:24")
    assert config.split.test_days == pytest.approx(36 / 1440, abs=1e-5)
    assert config.split.validation_days == pytest.approx(18 / 1440, abs=1e-5)
    assert (split_at, config.split.test_days) == quantile_split(ev["event_at"])
    # training keeps 144 of the 181 events and the test window reaches the last one
    end = split_at + pd.Timedelta(days=config.split.test_days)
    assert (ev.event_at < split_at).sum() == 144
    assert ev.event_at.max() < end


def test_views_only_data_counts_every_test_interaction_as_relevant():
    views = events_every(24 * 60, 43).assign(event_type="product_view")
    config, _ = training_plan(views)
    assert config.split.relevance == "any"
    assert (config.split.test_days, config.split.validation_days) == (14, 7)
    # one purchase anywhere keeps the default: carts and purchases are relevant
    views.loc[0, "event_type"] = "purchase"
    config, _ = training_plan(views)
    assert config is DEFAULT_PIPELINE


def test_a_failed_clause_reads_with_its_shortfall_or_as_undefined():
    short = {"id": "ndcg_vs_best_baseline", "owner": "DS", "observed": 0.02312,
             "required": 0.02416, "margin": -0.00104, "margin_pct": -4.3046}  # fmt: skip
    assert clause_text(short) == (
        "ndcg_vs_best_baseline (DS): observed 0.02312, required 0.02416 (short by 0.00104, -4.3%)"
    )
    # no user to evaluate: the metric is null in dod.json (was a TypeError in the DAG)
    undefined = {"id": "ndcg_vs_popularity", "owner": "DS", "observed": None,
                 "required": None, "margin": None, "margin_pct": None}  # fmt: skip
    assert clause_text(undefined) == (
        "ndcg_vs_popularity (DS): observed undefined, required undefined"
    )


def test_a_gate_failure_fails_the_task_without_retry_and_keeps_its_routing(data_dir):
    """fail_fast: GateFailed becomes Airflow's fail-without-retry exception with the owner,
    details and link the failure callback routes on; other errors keep their retries."""
    import pickle

    import pandas as pd
    from airflow.sdk.exceptions import AirflowFailException

    from expectations.gate import GateFailed, run_gate
    from include.tasks import FailedWithoutRetry, fail_fast
    from include.tasks.training import DefinitionOfDoneFailed

    @fail_fast
    def gate_two_rows() -> None:
        # two interactions: far below the training set's 50 users / 500 interactions
        frame = pd.DataFrame(
            {"user_id": ["u1", "u2"], "item_id": ["i1", "i1"], "weight": [1.0, 3.0]}
        )
        run_gate("training_set", frame, run_name="t")

    with pytest.raises(FailedWithoutRetry) as info:
        gate_two_rows()
    exc = info.value
    assert isinstance(exc, AirflowFailException)
    assert isinstance(exc.__cause__, GateFailed)
    assert exc.owner_role == "DS" and exc.details["suite"] == "training_set"
    assert exc.docs_url == exc.__cause__.docs_url and str(exc) == f"GateFailed: {exc.__cause__}"
    assert pickle.loads(pickle.dumps(exc)).details == exc.details

    @fail_fast
    def transient() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):  # not deterministic: Airflow retries it
        transient()
    assert not issubclass(DefinitionOfDoneFailed, AirflowFailException)  # fail_fast converts it


def test_a_comparative_clause_reads_with_its_interval():
    c = {"id": "ndcg_vs_best_baseline", "owner": "DS", "observed": 0.0264, "required": 0.02416,
         "margin": 0.00224, "margin_pct": 9.27, "ratio": 1.2019, "ci_low": 1.046,
         "ci_high": 1.371, "factor": 1.1, "reference": "als", "rule": "better"}  # fmt: skip
    assert clause_text(c) == (
        "ndcg_vs_best_baseline (DS): observed 0.0264, required 0.02416 (margin +9.3%); "
        "ratio 1.2 [1.05, 1.37] vs 1.1x als (better)"
    )
