"""Data preparation: aggregation, features, the time split, and no leakage past T."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys import columns as C
from recsys.config import FeatureConfig, LightFMConfig, SplitConfig
from recsys.data import IdMap, aggregate_events, prepare_split, time_split
from recsys.models import CooccurrenceRecommender, LightFMRecommender, PopularityRecommender

T = pd.Timestamp("2025-03-01")


def ev(user, item, etype, at):
    return {C.USER_ID: user, C.ITEM_ID: item, C.EVENT_TYPE: etype, C.EVENT_AT: pd.Timestamp(at)}


@pytest.fixture
def catalog() -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.ITEM_ID: ["a", "b", "c", "d", "n"],
            C.DEPARTMENT: ["w", "w", "m", "m", "w"],
            C.CATEGORY: ["dress", "dress", "shirt", "shoe", "dress"],
            C.PRODUCT_TYPE: ["maxi", "mini", "oxford", "boot", "maxi"],
            C.COLOUR: ["red", "blue", "red", "black", "red"],
            C.BRAND: ["x", "y", "x", "z", "x"],
            C.PRICE_BAND: ["1", "2", "1", "3", "1"],
            # "n" launches after T: a cold item
            C.LAUNCH_DATE: pd.to_datetime(["2024-01-01"] * 4 + ["2025-03-05"]).date,
        }
    )


@pytest.fixture
def users() -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.USER_ID: ["u1", "u2", "u3"],
            C.COUNTRY: ["DE", "FR", "DE"],
            C.PLATFORM: ["web", "ios", "web"],
            C.PREFERRED_CATEGORY: ["shoe", "shoe", "shoe"],  # leaky dbt column: ignored
        }
    )


def base_events() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ev("u1", "a", C.VIEW, "2025-02-01 10:00"),
            ev("u1", "a", C.CART, "2025-02-01 10:05"),
            ev("u1", "a", C.PURCHASE, "2025-02-01 10:10"),
            ev("u1", "b", C.VIEW, "2025-02-20"),
            ev("u2", "a", C.VIEW, "2025-02-10"),
            ev("u2", "c", C.CART, "2025-02-11"),
            ev("u2", "c", C.PURCHASE, "2025-02-11 01:00"),
            ev("u2", "d", "page_view", "2025-02-12"),  # weight 0: ignored
            ev("u3", "c", C.VIEW, "2025-02-27"),
            ev("u3", "c", C.CART, "2025-02-27 00:10"),
        ]
    )


def after_t_events() -> pd.DataFrame:
    """Events at/after T that would change every model and feature if they leaked."""
    return pd.DataFrame(
        [
            ev("u1", "d", C.PURCHASE, "2025-03-01 00:00"),  # exactly T: test, not train
            ev("u1", "d", C.CART, "2025-03-02"),
            *[ev("u3", "d", C.PURCHASE, f"2025-03-0{i}") for i in range(2, 9)],
            *[ev("u2", "d", C.VIEW, f"2025-03-0{i}") for i in range(2, 9)],
            ev("u9", "a", C.PURCHASE, "2025-03-03"),  # a user first seen after T
            ev("u2", "n", C.CART, "2025-03-06"),  # the cold item sells
            ev("u2", "n", C.PURCHASE, "2025-03-06 00:05"),
        ]
    )


def test_aggregate_events_by_hand():
    cfg = FeatureConfig(half_life_days=10.0)
    agg = aggregate_events(base_events(), cfg, reference_at=T).set_index([C.USER_ID, C.ITEM_ID])
    assert ("u2", "d") not in agg.index  # page_view weighs 0
    row = agg.loc[("u1", "a")]
    assert row[C.WEIGHT] == 1 + 3 + 5
    assert (row[C.N_VIEWS], row[C.N_CARTS], row[C.N_PURCHASES]) == (1, 1, 1)
    assert row[C.LAST_INTERACTION_AT] == pd.Timestamp("2025-02-01 10:10")
    # u1 viewed b 9 days before T: 1 * 0.5 ** (9 / 10)
    assert agg.loc[("u1", "b"), C.DECAYED_SCORE] == pytest.approx(0.5**0.9)


def test_time_split_boundaries():
    events = pd.concat([base_events(), after_t_events()], ignore_index=True)
    events = pd.concat(
        [events, pd.DataFrame([ev("u1", "b", C.VIEW, "2025-04-01")])], ignore_index=True
    )
    s = time_split(events, T, test_days=14)
    assert s.train_events[C.EVENT_AT].max() < T
    assert s.test_events[C.EVENT_AT].min() == T  # an event exactly at T is test
    assert s.test_events[C.EVENT_AT].max() < T + pd.Timedelta(days=14)  # later ones dropped
    assert len(s.train_events) + len(s.test_events) == len(events) - 1


def test_default_split_is_test_days_before_latest_event():
    events = pd.concat([base_events(), after_t_events()], ignore_index=True)
    s = time_split(events, None, test_days=3)
    assert s.split_at == pd.Timestamp("2025-03-08") - pd.Timedelta(days=2)


def test_features(catalog, users):
    cfg = FeatureConfig(n_preferred_categories=1)
    split = prepare_split(base_events(), catalog, users, cfg, SplitConfig(validation_days=0), T)
    ds = split.test.dataset
    assert list(ds.users.ids) == ["u1", "u2", "u3"]
    assert list(ds.items.ids) == ["a", "b", "c", "d", "n"]  # catalog items without events too
    names = list(ds.item_feature_names)
    # identity only for items with training interactions (a, b, c); d and n use attributes
    assert [n for n in names if n.startswith("item=")] == ["item=a", "item=b", "item=c"]
    f = ds.item_features.toarray()
    np.testing.assert_allclose(f.sum(axis=1), 1.0, rtol=1e-6)
    n_row = dict(zip(names, f[ds.items.index(["n"])[0]], strict=True))
    assert n_row["category=dress"] == pytest.approx(1 / 6)  # six attributes, no identity
    assert ds.cold_items().tolist() == [False, False, False, False, True]
    # user features: country, platform, preferred category from TRAIN events, identity
    unames = list(ds.user_feature_names)
    # the leaky dbt column says everyone prefers shoes; nobody touched a shoe before T
    assert ds.user_features[:, unames.index("preferred_category=shoe")].nnz == 0
    u2 = dict(zip(unames, ds.user_features.toarray()[1], strict=True))
    assert u2["country=FR"] > 0 and u2["platform=ios"] > 0 and u2["user=u2"] > 0
    assert u2["preferred_category=shirt"] > 0  # u2 bought a shirt before T
    # known positives: what each user bought before T
    assert ds.known_positives.toarray()[:, :3].tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]


def test_identity_share(catalog, users):
    cfg = FeatureConfig(item_identity_share=0.5, n_preferred_categories=0)
    ds = prepare_split(base_events(), catalog, users, cfg, SplitConfig(validation_days=0), T)
    ds = ds.test.dataset
    names = list(ds.item_feature_names)
    row_a = ds.item_features.toarray()[0]
    assert row_a[names.index("item=a")] == pytest.approx(0.5)
    assert row_a[names.index("brand=x")] == pytest.approx(0.5 / 6)
    row_d = ds.item_features.toarray()[3]  # no identity: attributes take the whole row
    assert row_d.sum() == pytest.approx(1.0)


def test_no_leakage_after_t(catalog, users):
    """Events at/after T change nothing that is trained: matrices, features, fitted models."""
    cfg = FeatureConfig()
    scfg = SplitConfig(validation_days=7)
    with_future = pd.concat([base_events(), after_t_events()], ignore_index=True)
    a = prepare_split(with_future, catalog, users, cfg, scfg, T)
    b = prepare_split(base_events(), catalog, users, cfg, scfg, T)
    da, db = a.test.dataset, b.test.dataset
    assert list(da.users.ids) == list(db.users.ids)  # u9 (first seen after T) is not a user
    assert list(da.item_feature_names) == list(db.item_feature_names)
    assert list(da.user_feature_names) == list(db.user_feature_names)
    for name in (
        "interactions",
        "recency",
        "strong",
        "known_positives",
        "item_features",
        "user_features",
    ):
        diff = getattr(da, name) != getattr(db, name)
        assert diff.nnz == 0, name
    va, vb = a.validation, b.validation
    assert (va.truth != vb.truth).nnz == 0
    assert (va.dataset.interactions != vb.dataset.interactions).nnz == 0
    # the test targets exist only in the run that has them: the case is not vacuous
    assert a.test.truth.nnz > 0 and b.test.truth.nnz == 0
    for make in (
        PopularityRecommender,
        CooccurrenceRecommender,
        lambda: LightFMRecommender(LightFMConfig(num_threads=1, epochs=3, early_stopping=False)),
    ):
        ma, mb = make().fit(da, va), make().fit(db, vb)
        users_idx = np.arange(da.n_users)
        np.testing.assert_array_equal(ma.score_block(users_idx), mb.score_block(users_idx))


def test_leaking_would_change_the_result(catalog, users):
    """Control for the test above: moving T past the future events does change training."""
    with_future = pd.concat([base_events(), after_t_events()], ignore_index=True)
    cfg, scfg = FeatureConfig(), SplitConfig(validation_days=0)
    before = prepare_split(with_future, catalog, users, cfg, scfg, T).test.dataset
    leaked = prepare_split(with_future, catalog, users, cfg, scfg, "2025-03-10").test.dataset
    assert leaked.n_users > before.n_users
    pop_before = PopularityRecommender().fit(before).item_scores_
    pop_leaked = PopularityRecommender().fit(leaked).item_scores_
    assert not np.array_equal(pop_before, pop_leaked)


def test_idmap():
    m = IdMap.from_values(["b", "a", None, "b"])
    assert list(m.ids) == ["a", "b"]
    assert m.index(["b", "a"]).tolist() == [1, 0]
    assert m.index(["zz"], missing="ignore").tolist() == [-1]
    with pytest.raises(KeyError, match="unknown ids"):
        m.index(["zz"])


def test_bad_input_says_what_is_missing(catalog):
    with pytest.raises(ValueError, match="event_type"):
        time_split(base_events().drop(columns=[C.EVENT_TYPE]), T)
    with pytest.raises(ValueError, match="no events before"):
        time_split(base_events(), "2024-01-01")


def test_sparse_shapes(catalog, users):
    split = prepare_split(base_events(), catalog, users, FeatureConfig(), SplitConfig(), T)
    ds = split.test.dataset
    for m in (ds.interactions, ds.recency, ds.strong, ds.known_positives):
        assert isinstance(m, sp.csr_matrix) and m.shape == (ds.n_users, ds.n_items)
    assert ds.item_features.shape[0] == ds.n_items and ds.user_features.shape[0] == ds.n_users
