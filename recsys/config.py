"""Frozen configuration objects. Every config carries ``random_state``; JSON round-trips them.

One dataclass per concern (features, split, each model, evaluation), composed into
:class:`PipelineConfig`. They are plain values: build them in the DAG or a notebook, save them
with the model (:func:`config_to_dict`), rebuild them with :func:`pipeline_config_from_dict`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from common.contracts import EVENT_WEIGHTS
from recsys import columns as C

#: The platform's event weights (dbt's seed ``event_weights.csv``, via common.contracts).
DEFAULT_EVENT_WEIGHTS: tuple[tuple[str, float], ...] = EVENT_WEIGHTS


@dataclass(frozen=True)
class FeatureConfig:
    """How events become interaction weights and how feature matrices are built.

    Attributes
    ----------
    event_weights
        ``(event_type, weight)`` pairs; other event types are ignored.
    half_life_days
        ``decayed_score`` halves every ``half_life_days`` before the end of the window.
    train_weight
        Which of ``weight`` or ``decayed_score`` models train on (``Dataset.interactions``);
        ``Dataset.recency`` always holds ``decayed_score``.
    item_feature_columns
        Catalog attributes turned into one-hot item features.
    item_identity
        ``"warm"``: an identity feature for items with training interactions only (cold items
        are described by their attributes alone, so an untrained identity vector adds no noise);
        ``"all"``; ``"none"``.
    user_feature_columns
        Static user attributes turned into one-hot user features.
    n_preferred_categories
        Top categories per user (by training weight) used as user features; computed on the
        training window only.
    user_identity
        Add an identity feature per user.
    item_identity_share, user_identity_share
        Weight of the identity feature in a row whose weights sum to 1 (the attributes share
        the rest equally). ``None``: every feature of the row weighs the same (LightFM's
        default normalisation). A larger identity share lets the model memorise individual
        users/items while attributes still carry cold ones. Users default to 0.9: on the
        benchmark data equal weights let the shared features (country, platform, preferred
        categories) swamp the identity and cost ~25% nDCG@10; 0.9 keeps the features for
        users with little history.
    user_history_share
        When set, each user row also holds their training items (``history=<item>``, equal
        weights) with this share of the row; the other features keep the rest (users without
        history keep all of it). 1.0 represents a user by their items alone: on
        collaborative-only files (``python -m recsys evaluate``) LightFM alone went from
        0.53x to 0.72x ALS's nDCG@10 (Amazon Beauty, 6k users, leave-last-out).
    """

    event_weights: tuple[tuple[str, float], ...] = DEFAULT_EVENT_WEIGHTS
    half_life_days: float = 14.0
    train_weight: Literal["weight", "decayed_score"] = "weight"
    item_feature_columns: tuple[str, ...] = C.ITEM_ATTRIBUTE_COLUMNS
    item_identity: Literal["warm", "all", "none"] = "warm"
    user_feature_columns: tuple[str, ...] = C.USER_ATTRIBUTE_COLUMNS
    n_preferred_categories: int = 3
    user_identity: bool = True
    item_identity_share: float | None = None
    user_identity_share: float | None = 0.9
    user_history_share: float | None = None
    random_state: int = 42


@dataclass(frozen=True)
class SplitConfig:
    """The time split and what counts as relevant / already known.

    Attributes
    ----------
    test_days
        Length of the test window ``[T, T + test_days)``; also used to derive ``T`` from the
        latest event when no split time is given. Fractions of a day are allowed (samples
        that span hours), with an explicit split time.
    validation_days
        Length of the validation slice ``[T - validation_days, T)`` carved from the training
        window for early stopping and the blend weight.
    relevance
        Which test interactions are relevant: ``"cart_or_purchase"``, ``"purchase"``, ``"any"``.
    known_positives
        Which training interactions are filtered out of recommendations: ``"purchased"``
        (items the user already bought) or ``"interacted"`` (any training interaction).
    """

    test_days: float = 14
    validation_days: float = 7
    relevance: Literal["cart_or_purchase", "purchase", "any"] = "cart_or_purchase"
    known_positives: Literal["purchased", "interacted"] = "purchased"
    random_state: int = 42


@dataclass(frozen=True)
class LightFMConfig:
    """LightFM hybrid model (WARP by default) with early stopping on the validation slice."""

    no_components: int = 32
    loss: Literal["warp", "bpr", "warp-kos", "logistic"] = "warp"
    # 0.05 (was 0.1): at 0.1 the validation curve peaked after 1-2 epochs and fell away on
    # collaborative-only data; 0.05 climbs for 5-10 epochs to a higher peak
    learning_rate: float = 0.05
    epochs: int = 50  # maximum with early stopping, exact count without
    item_alpha: float = 1e-6
    user_alpha: float = 1e-6
    max_sampled: int = 10
    # 1 thread: LightFM's Hogwild updates race with 2+ threads, so two fits of the same data
    # differ and a verdict at the noise edge flips. One thread makes the same snapshot, config
    # and seed give the same model; its cost is stated in bench/RESULTS.md.
    num_threads: int = 1
    sample_weight: Literal["none", "log1p", "raw"] = "log1p"
    early_stopping: bool = True
    # stop after `patience` epochs without a better validation nDCG, never before
    # `min_epochs` (a noisy validation slice must not stop training after the first epoch)
    patience: int = 4
    min_epochs: int = 5
    min_delta: float = 1e-4
    validation_k: int = 10  # the curve is nDCG@validation_k on the validation slice
    validation_max_users: int = 2000
    # After early stopping on the validation slice: "continue" trains the stopped model
    # `continue_epochs` more on the whole training window (same feature space, cheapest);
    # "full" refits from scratch for the best epoch count; "none" keeps the slice's model.
    refit: Literal["continue", "full", "none"] = "continue"
    continue_epochs: int = 1
    random_state: int = 42


@dataclass(frozen=True)
class ALSConfig:
    """implicit.cpu ALS baseline; confidence = 1 + alpha * log1p(weight)."""

    factors: int = 64
    regularization: float = 0.05
    alpha: float = 10.0
    iterations: int = 15
    warm_start_iterations: int = 5  # sweeps when started from a fitted ALS (blend refit)
    num_threads: int = 2
    random_state: int = 42


@dataclass(frozen=True)
class CooccurrenceConfig:
    """Item-item "also bought" on cart/purchase co-occurrence.

    Attributes
    ----------
    source
        ``"cart_or_purchase"`` or ``"any"`` interactions define co-occurrence.
    normalisation
        ``"cosine"``: ``c_ij / sqrt(n_i n_j)``; ``"conditional"``: ``c_ij / n_i``.
    shrinkage
        Added to the denominator; damps pairs seen by few users.
    min_count
        Pairs co-occurring for fewer users are dropped.
    max_neighbours
        Keep the strongest neighbours per item (bounds memory and scoring time).
    history
        How a user's training interactions weigh when scoring users: ``"binary"`` or
        ``"recency"`` (``decayed_score``, recent interactions count more).
    self_weight
        User scores are ``history @ (S + self_weight * I)``. 0 (the "also bought" baseline):
        only items co-bought with the history; > 0 also brings back items the user touched
        and did not buy (shoppers return to items they viewed). An item's own "also bought"
        list never contains the item itself.
    """

    source: Literal["cart_or_purchase", "any"] = "cart_or_purchase"
    history: Literal["binary", "recency"] = "binary"
    self_weight: float = 0.0
    normalisation: Literal["cosine", "conditional"] = "cosine"
    shrinkage: float = 2.0
    min_count: int = 1
    max_neighbours: int = 50
    random_state: int = 42


@dataclass(frozen=True)
class BlendConfig:
    """LightFM + ALS + co-occurrence blend: per-user z-scores mixed with weights fitted on validation.

    Scores are ``(1-weight) z(F) + weight z(C)`` with the factor part
    ``F = (1-als_weight) z(LightFM) + als_weight z(ALS)`` (ALS as in :class:`ALSConfig`) and
    the co-occurrence part ``C = recency_history @ (S + self_weight * I)`` (see
    :class:`CooccurrenceConfig`). ``weight`` (co-occurrence share), ``self_weight`` and
    ``als_weight`` are fixed when given; those left ``None`` are the best point of their grids
    (``weight_grid`` x ``self_weight_grid`` x ``als_weight_grid``) by nDCG@k on the validation
    slice (``search_max_users`` seeded users), falling back to the ``default_*`` values
    without validation. A 0 in a grid lets the search drop that part. The ALS part's rank
    (``als_factors``, else the best of ``als_factors_grid`` searched with ``als_weight``; with
    every weight fixed: ``ALSConfig.factors``) is the blend's own: the ALS baseline keeps
    ``ALSConfig.factors``.
    """

    weight: float | None = None
    self_weight: float | None = None
    als_weight: float | None = None
    weight_grid: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98)
    self_weight_grid: tuple[float, ...] = (0.0, 2.0, 8.0, 32.0, 128.0)
    # up to 0.8: on the simulation the search settled on the grid's edge (0.5) when it ended there
    als_weight_grid: tuple[float, ...] = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8)
    # The rank of the blend's ALS part, searched with its weight (the ALS baseline keeps
    # ALSConfig.factors). On the default simulation (24 planted taste segments, a median of
    # 5 training items per test user) 64 factors overfit the thin histories and validation
    # picks 32. Not 16: on simulator seed 11 it won validation but its top-20 lists covered
    # 18 % of the catalog, under the definition of done's coverage floor.
    als_factors: int | None = None
    als_factors_grid: tuple[int, ...] = (32, 64)
    default_weight: float = 0.5
    default_self_weight: float = 0.5
    default_als_weight: float = 0.3
    validation_k: int = 10
    search_max_users: int = 2000
    random_state: int = 42


@dataclass(frozen=True)
class EvalConfig:
    """How every model is evaluated on the time split."""

    ks: tuple[int, ...] = (10, 20)
    max_users: int | None = None  # sample evaluation users (seeded) to bound time
    auc_max_users: int = 2000  # AUC needs full score rows: computed on a seeded sample
    block_size: int = 2048
    # at most this many scores per block (users x items): a 2048 x 75k block (600 MB) made
    # evaluation slower than smaller ones that stay in memory bandwidth's sweet spot
    block_elements: int = 16_000_000
    random_state: int = 42


@dataclass(frozen=True)
class PipelineConfig:
    """Everything ``recsys.pipeline.train_evaluate`` needs."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    lightfm: LightFMConfig = field(default_factory=LightFMConfig)
    als: ALSConfig = field(default_factory=ALSConfig)
    cooccurrence: CooccurrenceConfig = field(default_factory=CooccurrenceConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    candidate: str = "lightfm_blend"
    baselines: tuple[str, ...] = (
        "popularity",
        "category_popularity",
        "cooccurrence",
        "als",
        "recently_viewed",
    )
    refit_on_all: bool = True  # the published model is refit on train + test windows
    trending_days: int = 7
    random_state: int = 42


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass; tuples become lists."""
    return dataclasses.asdict(config)


def _build(cls: type, data: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}; fix the saved config")
    for key, value in data.items():
        if isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[key] = value
    return cls(**kwargs)


_SECTIONS: dict[str, type] = {
    "features": FeatureConfig,
    "split": SplitConfig,
    "lightfm": LightFMConfig,
    "als": ALSConfig,
    "cooccurrence": CooccurrenceConfig,
    "blend": BlendConfig,
    "evaluation": EvalConfig,
}


def pipeline_config_from_dict(data: dict[str, Any]) -> PipelineConfig:
    """Inverse of :func:`config_to_dict` for :class:`PipelineConfig`."""
    data = dict(data)
    sections = {k: _build(cls, data.pop(k)) for k, cls in _SECTIONS.items() if k in data}
    top = _build(PipelineConfig, data)
    return dataclasses.replace(top, **sections)


# Module-level defaults for function signatures (configs are frozen, so sharing is safe).
DEFAULT_FEATURES = FeatureConfig()
DEFAULT_SPLIT = SplitConfig()
DEFAULT_LIGHTFM = LightFMConfig()
DEFAULT_ALS = ALSConfig()
DEFAULT_COOCCURRENCE = CooccurrenceConfig()
DEFAULT_BLEND = BlendConfig()
DEFAULT_EVAL = EvalConfig()
DEFAULT_PIPELINE = PipelineConfig()


def with_seed(config: PipelineConfig, seed: int) -> PipelineConfig:
    """``config`` with ``random_state = seed`` in every section (one seed for a whole run)."""
    sections = {
        f.name: dataclasses.replace(getattr(config, f.name), random_state=seed)
        for f in dataclasses.fields(config)
        if dataclasses.is_dataclass(getattr(config, f.name))
    }
    return dataclasses.replace(config, random_state=seed, **sections)
