"""Models behind one interface: frames, known positives, determinism, early stopping, blend."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys import columns as C
from recsys.config import (
    ALSConfig,
    BlendConfig,
    CooccurrenceConfig,
    LightFMConfig,
    PipelineConfig,
)
from recsys.data import prepare_split
from recsys.models import (
    MODEL_NAMES,
    ALSRecommender,
    CooccurrenceRecommender,
    LightFMBlend,
    LightFMRecommender,
    make_model,
)
from recsys.models.cooccurrence import item_similarity
from recsys.ranking import zscored_factor_sum
from recsys.synthetic import SyntheticConfig, generate

FAST_LFM = LightFMConfig(num_threads=1, epochs=6, patience=2, validation_max_users=300)
CFG = PipelineConfig(lightfm=FAST_LFM)


@pytest.fixture(scope="module")
def split():
    d = generate(SyntheticConfig(n_users=500, n_items=200, n_interactions=5000, random_state=1))
    return prepare_split(
        d.events, d.item_features, d.user_features, CFG.features, CFG.split, d.split_at
    )


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_shares_the_interface(split, name):
    ds = split.test.dataset
    model = make_model(name, CFG).fit(ds, split.validation)
    users = list(ds.users.ids[:40])
    frame = model.recommend(users, k=7)
    assert list(frame.columns) == list(C.RECO_COLUMNS)
    assert set(frame[C.USER_ID]) <= set(users)
    per_user = frame.groupby(C.USER_ID)
    assert per_user.size().max() <= 7
    for _, g in per_user:
        assert g[C.RANK].tolist() == list(range(1, len(g) + 1))
        assert (np.diff(g[C.SCORE].to_numpy()) <= 1e-6).all()  # best first
        assert g[C.ITEM_ID].is_unique
    # known positives (bought items) never come back
    known = ds.known_positives
    u_idx = ds.users.index(frame[C.USER_ID].to_numpy())
    i_idx = ds.items.index(frame[C.ITEM_ID].to_numpy())
    assert np.asarray(known[u_idx, i_idx]).ravel().sum() == 0
    # ... unless asked for
    unfiltered = model.recommend(users, k=ds.n_items, filter_known=False)
    assert len(unfiltered) == len(users) * ds.n_items
    # score_block is the dense form of the same ranking
    s = model.score_block(np.array([0, 1]))
    assert s.shape == (2, ds.n_items) and s.dtype == np.float32


def test_recommend_among_a_whitelist(split):
    ds = split.test.dataset
    model = make_model("popularity", CFG).fit(ds)
    items = list(ds.items.ids[:5])
    frame = model.recommend([ds.users.ids[0]], k=10, item_ids=items)
    assert set(frame[C.ITEM_ID]) <= set(items)


def test_unknown_user_raises(split):
    model = make_model("popularity", CFG).fit(split.test.dataset)
    with pytest.raises(KeyError, match="unknown ids"):
        model.recommend(["nobody"], k=3)


def test_lightfm_is_deterministic_with_one_thread_and_a_seed(split):
    ds = split.test.dataset
    a = LightFMRecommender(FAST_LFM).fit(ds, split.validation)
    b = LightFMRecommender(FAST_LFM).fit(ds, split.validation)
    c = LightFMRecommender(dataclasses.replace(FAST_LFM, random_state=7)).fit(ds, split.validation)
    users = np.arange(ds.n_users)
    np.testing.assert_array_equal(a.score_block(users), b.score_block(users))
    key = "validation_ndcg@10"
    assert [r[key] for r in a.learning_curve_] == [r[key] for r in b.learning_curve_]
    assert not np.array_equal(a.score_block(users), c.score_block(users))


def test_lightfm_scores_equal_lightfm_predict(split):
    ds = split.test.dataset
    m = LightFMRecommender(dataclasses.replace(FAST_LFM, early_stopping=False, epochs=2)).fit(ds)
    u = np.repeat(np.arange(5), ds.n_items)
    i = np.tile(np.arange(ds.n_items), 5)
    expected = m.model_.predict(
        u, i, user_features=ds.user_features, item_features=ds.item_features, num_threads=1
    )
    np.testing.assert_allclose(m.score_block(np.arange(5)).ravel(), expected, rtol=1e-4, atol=1e-4)


def test_early_stopping_records_a_learning_curve(split):
    ds = split.test.dataset
    m = LightFMRecommender(FAST_LFM)
    told: list[tuple[int, int]] = []  # (best epoch, epochs trained on the slice) when told
    each: list[tuple[int, int]] = []  # (epoch, best epoch so far) after each epoch
    m.on_stopped = lambda best: told.append((best, len(m.learning_curve_)))
    m.on_epoch = lambda epoch, best: each.append((epoch, best))
    m.fit(ds, split.validation)
    # told as soon as early stopping chose (recsys.pipeline's refit on all data follows both)
    assert told == [(m.best_epoch_, len(m.learning_curve_))]
    values = [r["validation_ndcg@10"] for r in m.learning_curve_]
    best_so_far = [1 + int(np.argmax(values[: e + 1])) for e in range(len(values))]
    assert each == list(zip(range(1, len(values) + 1), best_so_far, strict=True))
    # the validation slice shares the training feature columns, so the stopped model simply
    # continues on the whole training window ("continue" refit)
    assert list(split.validation.dataset.item_feature_names) == list(ds.item_feature_names)
    assert m.model_ is m._validation_model
    curve = m.learning_curve_
    assert [r["epoch"] for r in curve] == list(range(1, len(curve) + 1))
    assert 1 <= m.best_epoch_ <= len(curve) <= FAST_LFM.epochs
    best = max(r["validation_ndcg@10"] for r in curve)
    assert curve[m.best_epoch_ - 1]["validation_ndcg@10"] == best
    # a model that cannot learn stops after `patience` epochs without improvement, but never
    # before `min_epochs`
    for patience, min_epochs, epochs in ((2, 1, 3), (1, 6, 6), (4, 5, 5)):
        cfg = dataclasses.replace(
            FAST_LFM, learning_rate=0.0, epochs=20, patience=patience, min_epochs=min_epochs
        )
        frozen = LightFMRecommender(cfg).fit(ds, split.validation)
        assert len(frozen.learning_curve_) == epochs
        assert frozen.best_epoch_ == 1


def test_cooccurrence_by_hand():
    # baskets: u0 {0,1}, u1 {0,1,2}, u2 {2}
    baskets = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1]], dtype=np.float32))
    sim = item_similarity(baskets, CooccurrenceConfig(shrinkage=0.0)).toarray()
    # c01 = 2, n0 = n1 = 2: cosine 2 / 2 = 1; c02 = 1, n2 = 2: 1 / 2; diagonal 0
    np.testing.assert_allclose(sim, [[0, 1, 0.5], [1, 0, 0.5], [0.5, 0.5, 0]])
    cond = item_similarity(baskets, CooccurrenceConfig(shrinkage=0.0, normalisation="conditional"))
    np.testing.assert_allclose(cond.toarray()[2], [0.5, 0.5, 0])  # c20 / n2
    top1 = item_similarity(baskets, CooccurrenceConfig(shrinkage=0.0, max_neighbours=1)).toarray()
    assert (top1 > 0).sum(axis=1).tolist() == [1, 1, 1]


def test_also_bought_never_returns_the_item_itself(split):
    m = CooccurrenceRecommender().fit(split.test.dataset)
    items = np.arange(split.test.dataset.n_items)
    idx, _ = m.similar_items(items, 10)
    assert not (idx == items[:, None]).any()


def test_blend_picks_weights_on_validation_and_scores_the_formula(split):
    ds = split.test.dataset
    cfg = BlendConfig(
        weight_grid=(0.0, 0.5, 1.0),
        self_weight_grid=(0.0, 4.0),
        als_weight_grid=(0.0, 0.5),
        als_factors_grid=(4, 8),
        search_max_users=200,
    )
    blend = LightFMBlend(FAST_LFM, CooccurrenceConfig(), cfg).fit(ds, split.validation)
    # coordinate search: 2 ALS ranks x 2 ALS weights (co-occurrence off), then 3 x 2 points
    # at the best rank and weight
    assert len(blend.weight_curve_) == 2 * 2 + 6
    key = "validation_ndcg@10"
    first, second = blend.weight_curve_[:4], blend.weight_curve_[4:]
    assert [(r["als_factors"], r["als_weight"]) for r in first] == [
        (4, 0.0),
        (4, 0.5),
        (8, 0.0),
        (8, 0.5),
    ]
    assert all(r["weight"] == 0.0 for r in first)
    top = max(first, key=lambda r: r[key])
    assert {(r["als_factors"], r["als_weight"]) for r in second} == {
        (top["als_factors"], top["als_weight"])
    }
    best = max(blend.weight_curve_, key=lambda r: r[key])
    assert (blend.weight_, blend.self_weight_, blend.als_weight_, blend.als_factors_) == (
        best["weight"],
        best["self_weight"],
        best["als_weight"],
        best["als_factors"],
    )
    assert (blend.als is None) == (blend.als_weight_ == 0)
    if blend.als is not None:  # the published ALS part has the chosen rank
        assert blend.als.item_factors_.shape[1] == blend.als_factors_
        assert blend.export().params["factor_dims"]["als"] == blend.als_factors_


def _z(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=1, keepdims=True)
    return np.divide(x - x.mean(axis=1, keepdims=True), sd, out=np.zeros_like(x), where=sd > 0)


@pytest.mark.parametrize("als_weight", [0.0, 0.4])
def test_blend_scores_the_formula(split, als_weight):
    ds = split.test.dataset
    cfg = BlendConfig(weight=0.3, self_weight=4.0, als_weight=als_weight)
    blend = LightFMBlend(FAST_LFM, CooccurrenceConfig(), cfg).fit(ds, split.validation)
    # the blend of z-scores, recomputed densely by hand
    users = np.arange(20)
    f = _z(blend.lightfm.score_block(users).astype(np.float64))
    if als_weight:
        f = (1 - als_weight) * f + als_weight * _z(blend.als.score_block(users).astype(np.float64))
    hist = ds.recency[users].toarray()
    sim = blend.cooccurrence.similarity_.toarray() + blend.self_weight_ * np.eye(ds.n_items)
    c = hist @ sim
    w = blend.weight_
    expected = (1 - w) * _z(f) + w * _z(c)
    np.testing.assert_allclose(blend.score_block(users), expected, rtol=1e-3, atol=1e-3)
    # the exported arrays (what the registry stores and batch scoring uses) give the same
    exported = blend.export()
    assert exported.params["als_weight"] == als_weight
    # LightFM alone keeps its d columns; with ALS each part adds one for its scaled item bias
    d = FAST_LFM.no_components
    if als_weight:
        d += 1 + blend.als.user_factors_.shape[1] + 1
    assert exported.user_embeddings.shape == (ds.n_users, d)


def test_blend_search_points_equal_the_dense_blend(split):
    """The search scores only each user's co-occurrence items plus LightFM's top k of the
    rest; every point must equal the dense blend over all items, ranked and measured."""
    from recsys.metrics import ndcg_at_k
    from recsys.models.blend import _search_cooc
    from recsys.ranking import mask_known, top_k

    ds, validation = split.test.dataset, split.validation
    lfm = LightFMRecommender(FAST_LFM).fit(ds, validation)
    vstate = lfm.validation_state_
    inner = validation.dataset
    cooc = CooccurrenceRecommender(CooccurrenceConfig(history="recency")).fit(inner)
    cfg = BlendConfig(weight_grid=(0.0, 0.3, 0.9), self_weight_grid=(0.0, 4.0))
    users = validation.eval_users
    curve = _search_cooc(vstate, cooc, validation, cfg, users)
    assert [(r["weight"], r["self_weight"]) for r in curve] == [
        (w, lam) for lam in (0.0, 4.0) for w in (0.0, 0.3, 0.9)
    ]
    f = vstate.score_block(users).astype(np.float64)
    hist = inner.recency[users].toarray()
    for row in curve:
        sim = cooc.similarity_.toarray() + row["self_weight"] * np.eye(inner.n_items)
        w = row["weight"]
        dense = (1 - w) * _z(f) + w * _z(hist @ sim)
        mask_known(dense, inner.known_positives, users)
        dense[:, ~validation.candidates] = -np.inf
        idx, _ = top_k(dense, 10)
        expected = ndcg_at_k(idx, validation.truth[users], 10)
        assert row["validation_ndcg@10"] == pytest.approx(expected, abs=1e-12)
    assert max(r["validation_ndcg@10"] for r in curve) > 0  # the comparison is not all zeros


def test_zscored_factor_sum_by_hand():
    # two users, three items; part 1 scores u.v + b_u + b_i, part 2 u.v
    u1, bu1 = np.array([[1.0], [2.0]]), np.array([0.5, -1.0])
    v1, bi1 = np.array([[1.0], [0.0], [-1.0]]), np.array([0.0, 1.0, 2.0])
    # user 0: [1.5, 1.5, 1.5] + ... = 1*[1,0,-1] + 0.5 + [0,1,2] = [1.5, 1.5, 1.5] (flat)
    # user 1: 2*[1,0,-1] - 1 + [0,1,2] = [1, 0, -1]  -> z = [1.2247, 0, -1.2247]
    u2, v2 = np.array([[1.0], [1.0]]), np.array([[3.0], [1.0], [2.0]])
    # part 2, both users: [3, 1, 2] -> z = [1.2247, -1.2247, 0]
    parts = [
        (u1, bu1, v1, bi1, 0.25),
        (u2, np.zeros(2), v2, np.zeros(3), 0.75),
    ]
    ue, ub, ie, ib = zscored_factor_sum(parts)
    scores = ue @ ie.T + ub[:, None] + ib[None, :]
    r = np.sqrt(1.5)  # z of [1, 0, -1] (population sd sqrt(2/3))
    expected_user1 = 0.25 * np.array([r, 0, -r]) + 0.75 * np.array([r, -r, 0])
    np.testing.assert_allclose(scores[1], expected_user1, atol=1e-5)
    # user 0's first part is flat: it has no z-score and adds nothing
    np.testing.assert_allclose(scores[0], 0.75 * np.array([r, -r, 0]), atol=1e-5)
    with pytest.raises(ValueError, match="weight 0"):
        zscored_factor_sum([(u1, bu1, v1, bi1, 0.0)])


def test_blend_with_fixed_weights_skips_the_search(split):
    cfg = BlendConfig(weight=0.3, self_weight=1.0, als_weight=0.2)
    blend = LightFMBlend(FAST_LFM, CooccurrenceConfig(), cfg)
    blend.fit(split.test.dataset, split.validation)
    assert blend.weight_curve_ == []
    assert (blend.weight_, blend.self_weight_, blend.als_weight_) == (0.3, 1.0, 0.2)


def test_recommend_frame_types(split):
    frame = make_model("category_popularity", CFG).fit(split.test.dataset).recommend(k=3)
    assert frame[C.RANK].dtype == np.int32 and frame[C.SCORE].dtype == np.float32
    assert isinstance(frame, pd.DataFrame) and len(frame) == 3 * split.test.dataset.n_users


def test_blend_search_with_one_als_weight_uses_it(split):
    cfg = BlendConfig(
        weight_grid=(0.0,),
        self_weight_grid=(0.0,),
        als_weight_grid=(0.5,),
        als_factors=8,
        search_max_users=100,
    )
    blend = LightFMBlend(FAST_LFM, CooccurrenceConfig(), cfg)
    blend.fit(split.test.dataset, split.validation)
    assert [(r["als_factors"], r["als_weight"]) for r in blend.weight_curve_] == [(8, 0.5)]
    assert blend.als_weight_ == 0.5 and blend.als is not None


def test_als_warm_start_continues_from_the_given_factors(split):
    cfg = ALSConfig(factors=8, iterations=15, warm_start_iterations=1, num_threads=1)
    ds = split.test.dataset
    converged = ALSRecommender(cfg).fit(ds)
    warm = ALSRecommender(cfg, init=converged).fit(ds)
    assert warm.warm_started_ and not converged.warm_started_
    # one more sweep from a converged solution barely moves it; a cold 1-sweep fit is far off
    cold = ALSRecommender(dataclasses.replace(cfg, iterations=1)).fit(ds)
    users = np.arange(50)
    ref = converged.score_block(users).ravel()
    assert np.corrcoef(ref, warm.score_block(users).ravel())[0, 1] > 0.99
    assert np.corrcoef(ref, cold.score_block(users).ravel())[0, 1] < 0.95
    # factors of other shapes are not used
    other = ALSRecommender(dataclasses.replace(cfg, factors=4)).fit(ds)
    assert not ALSRecommender(cfg, init=other).fit(ds).warm_started_


@pytest.mark.parametrize(
    ("bests", "chosen"),
    [
        ((1, 2, 2, 2, 2), 2),  # early stopping's best so far after each epoch, then its choice
        ((1, 1, 3, 4, 4, 4), 4),
        ((1,), 3),  # told the count before it got there: it trains on to it
    ],
)
def test_lockstep_refit_is_the_refit_from_scratch(split, bests, chosen):
    import time
    from concurrent.futures import ThreadPoolExecutor

    from recsys.models.lightfm_model import LockstepRefit

    ds = split.test.dataset
    cfg = dataclasses.replace(FAST_LFM, epochs=8)
    trail = LockstepRefit(cfg, ds)
    with ThreadPoolExecutor(max_workers=1) as pool:
        fit = pool.submit(trail.run)
        for epoch, best in enumerate(bests, start=1):
            trail.seen(epoch, best)
            time.sleep(0.05)
        trail.stopped(chosen)
        got = fit.result(timeout=120)
    want = LightFMRecommender(dataclasses.replace(cfg, early_stopping=False, epochs=chosen)).fit(ds)
    assert got.config == want.config and got.dataset_ is ds
    for part in ("user_embeddings", "item_embeddings", "user_biases", "item_biases", "extra"):
        a, b = getattr(got.export(), part), getattr(want.export(), part)
        for key in a if isinstance(a, dict) else [None]:
            np.testing.assert_array_equal(a[key] if key else a, b[key] if key else b)


def test_lockstep_refit_never_trains_past_the_best_epoch_so_far(split, monkeypatch):
    import time
    from concurrent.futures import ThreadPoolExecutor

    from recsys.models.lightfm_model import LockstepRefit

    trail = LockstepRefit(dataclasses.replace(FAST_LFM, epochs=8), split.test.dataset)
    epochs: list[int] = []
    fit_epochs = LightFMRecommender._fit_epochs

    def counted(self, model, ds, inputs, n):  # noqa: ANN001 - LightFMRecommender's signature
        epochs.append(n)
        fit_epochs(self, model, ds, inputs, n)

    monkeypatch.setattr(LightFMRecommender, "_fit_epochs", counted)
    with ThreadPoolExecutor(max_workers=1) as pool:
        fit = pool.submit(trail.run)
        for epoch in range(1, 6):  # the best stays at epoch 2 while early stopping runs on
            trail.seen(epoch, min(epoch, 2))
        deadline = time.monotonic() + 60
        while len(epochs) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # time enough for a third epoch, were it allowed
        assert epochs == [1, 1]  # waiting: epochs 3-5 may never be needed
        trail.stopped(2)
        assert fit.result(timeout=120).config.epochs == 2
    assert epochs == [1, 1]


def test_lockstep_refit_cancelled_returns_nothing(split):
    from concurrent.futures import ThreadPoolExecutor

    from recsys.models.lightfm_model import LockstepRefit

    trail = LockstepRefit(dataclasses.replace(FAST_LFM, epochs=8), split.test.dataset)
    with ThreadPoolExecutor(max_workers=1) as pool:
        fit = pool.submit(trail.run)
        trail.seen(1, 1)
        trail.cancel()  # early stopping failed, or never ran
        assert fit.result(timeout=120) is None
