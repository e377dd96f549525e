"""Hyper-parameters of the session model, chosen on a validation slice of the train part.

The last 10 % of the training sessions (by time) are held out; each grid point is fitted on
the rest and scored on the slice's last-item cases; the best HR@20 (then MRR@20) wins. The
test sessions are never looked at.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from recsys.session.data import Cases, Sessions, split_validation
from recsys.session.knn import SessionIndex, StanConfig, hybrid_scores, knn_part, table_part
from recsys.session.models import SessionKNNConfig, SessionKNNParts, item_counts
from recsys.session.protocol import (
    case_chunks,
    case_ranks,
    chunk_ranks,
    hr_mrr,
    popularity_key,
)

#: the searched values (the defaults of :class:`SessionKNNConfig` are one of the points)
#: (recency 0, source_norm 0.5, rules_weight 0, decay 0 is the co-occurrence baseline itself,
#: cut to ``neighbours`` per item: the search can always fall back to it)
DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "recency": (0.0, 1.0),
    "source_norm": (0.5, 0.75, 1.0),
    "rules_weight": (0.0, 0.25, 0.5, 0.75),
    "decay": (0.0, 0.5, 1.0, 2.0),
}
#: tried on the grid's winner (a second, cheap stage)
TWO_HOP_GRID: tuple[float, ...] = (0.1, 0.3)
#: the taste table's weight, tried on the hybrid grid's winner
TASTE_GRID: tuple[float, ...] = (0.1, 0.3, 1.0)
#: below this many validation cases the grid is not trusted: the defaults are kept
MIN_VALIDATION_CASES = 50
#: the hybrid's grid (third stage, on the tuned item table): knn=0 is the table alone
HYBRID_GRID: dict[str, tuple[float, ...]] = {
    "knn": (0.0, 1.0),
    "mix": (0.5, 1.0, 2.0),
    "prior": (0.0, 0.15),
}
#: tried one at a time on the hybrid grid's winner (fourth stage)
HYBRID_REFINE: tuple[dict[str, float], ...] = ({"l1": 1.0}, {"l1": 4.0}, {"k": 300})


@dataclass(frozen=True)
class TuningResult:
    """The chosen config and every grid point's validation figures."""

    config: SessionKNNConfig
    n_validation_cases: int
    points: list[dict[str, float]]
    tuned: bool
    hybrid: StanConfig = field(default_factory=StanConfig)
    hybrid_points: list[dict[str, float]] = field(default_factory=list)


def tune(
    train: Sessions,
    n_items: int,
    base: SessionKNNConfig | None = None,
    grid: dict[str, tuple[float, ...]] | None = None,
    validation_share: float = 0.1,
    max_cases: int = 3000,
) -> TuningResult:
    """Grid-search :class:`SessionKNNConfig` on a validation slice carved from ``train``."""
    base = base or SessionKNNConfig()
    grid = DEFAULT_GRID if grid is None else grid
    if train.n_sessions < 20:
        return TuningResult(base, 0, [], tuned=False)
    fit, cases = split_validation(train, validation_share, max_cases)
    if cases.n < MIN_VALIDATION_CASES:
        return TuningResult(base, cases.n, [], tuned=False)
    pop_key = popularity_key(item_counts(fit, n_items))
    names = list(grid)
    points: list[dict[str, float]] = []
    best: tuple[float, float] | None = None
    best_config = base
    for recency in grid.get("recency", (base.recency,)):
        parts = SessionKNNParts.build(fit, n_items, base.window, float(recency))
        others = [n for n in names if n not in ("recency", "decay")]
        for values in itertools.product(*(grid[n] for n in others)):
            config = replace(base, recency=float(recency), **dict(zip(others, values, strict=True)))
            model = parts.model(config)
            for decay in grid.get("decay", (base.decay,)):
                model.decay = float(decay)
                hr, mrr = hr_mrr(case_ranks(model, cases, pop_key))
                point = {**{n: getattr(config, n) for n in others}, "recency": recency}
                point.update(
                    {"decay": float(decay), "two_hop": config.two_hop, "taste": config.taste}
                )
                point.update({"hr@20": hr, "mrr@20": mrr})
                points.append(point)
                if best is None or (hr, mrr) > best:
                    best = (hr, mrr)
                    best_config = replace(config, decay=float(decay))
    parts = SessionKNNParts.build(fit, n_items, best_config.window, best_config.recency)
    stage_one = best_config
    for two_hop in TWO_HOP_GRID:
        config = replace(stage_one, two_hop=two_hop)
        hr, mrr = hr_mrr(case_ranks(parts.model(config), cases, pop_key))
        point = {n: getattr(config, n) for n in (*names, "two_hop", "taste")}
        points.append({**point, "hr@20": hr, "mrr@20": mrr})
        if best is None or (hr, mrr) > best:
            best = (hr, mrr)
            best_config = config
    hybrid, hybrid_points, best_config = tune_hybrid(
        fit, cases, n_items, best_config, pop_key, parts=parts
    )
    return TuningResult(best_config, cases.n, points, True, hybrid, hybrid_points)


def tune_hybrid(
    fit: Sessions,
    cases: Cases,
    n_items: int,
    table_config: SessionKNNConfig,
    pop_key: np.ndarray,
    base: StanConfig | None = None,
    parts: SessionKNNParts | None = None,
) -> tuple[StanConfig, list[dict[str, float]], SessionKNNConfig]:
    """The hybrid's weights on the validation cases, then the taste table's weight (the
    item table's other parameters fixed at their winner); returns the hybrid, its points and
    the item table's config with the chosen ``taste``. ``parts``: built on ``fit`` with the
    table's window and recency (built here when None)."""
    base = base or StanConfig()
    if parts is None or (parts.window, parts.recency) != (
        table_config.window,
        table_config.recency,
    ):
        parts = SessionKNNParts.build(fit, n_items, table_config.window, table_config.recency)
    index = SessionIndex.build(fit, n_items, base)
    points: list[dict[str, float]] = []
    best: tuple[float, float] | None = None
    best_config, best_table = base, table_config
    tables: dict[SessionKNNConfig, sp.csr_matrix] = {}
    chunks = case_chunks(cases)  # as case_ranks scores them
    # The points differ mostly in the hybrid's weights: each chunk's neighbourhood part (per
    # k, l1, l3) and table part (per table) are kept for the next points, the last one of
    # each, and the scores are summed as SessionStan.score sums them (the same ranks).
    knn_parts: dict[int, tuple[tuple[int, float, float], sp.csr_matrix]] = {}
    table_parts: dict[int, tuple[SessionKNNConfig, sp.csr_matrix]] = {}

    def ranks(config: StanConfig, tconfig: SessionKNNConfig) -> np.ndarray:
        table = tables[tconfig]

        def score(i: int, prefix: Sessions) -> sp.csr_matrix:
            knn = scores = None
            if config.knn > 0:
                key = (config.k, config.l1, config.l3)
                if i not in knn_parts or knn_parts[i][0] != key:
                    knn_parts[i] = (key, knn_part(index, prefix, config))
                knn = knn_parts[i][1]
            if config.mix > 0:
                if i not in table_parts or table_parts[i][0] != tconfig:
                    table_parts[i] = (tconfig, table_part(table, prefix, tconfig.decay))
                scores = table_parts[i][1]
            return hybrid_scores(index, table, prefix, config, tconfig.decay, knn, scores)

        return chunk_ranks(chunks, score, pop_key)

    def trial(config: StanConfig, tconfig: SessionKNNConfig) -> None:
        nonlocal best, best_config, best_table
        if config.sample != base.sample or config.recency != base.recency:
            raise ValueError("the hybrid grid reuses one index: sample/recency are fixed")
        if tconfig not in tables:
            tables[tconfig] = parts.table(tconfig)
        hr, mrr = hr_mrr(ranks(config, tconfig))
        point = {n: float(getattr(config, n)) for n in ("knn", "mix", "prior", "l1", "k")}
        points.append({**point, "taste": tconfig.taste, "hr@20": hr, "mrr@20": mrr})
        if best is None or (hr, mrr) > best:
            best, best_config, best_table = (hr, mrr), config, tconfig

    for knn, mix, prior in itertools.product(*HYBRID_GRID.values()):
        if knn == 0 and mix != 1.0:
            continue  # the table alone: its scale does not matter
        trial(replace(base, knn=knn, mix=mix, prior=prior), table_config)
    stage, stage_table = best_config, best_table
    for taste in TASTE_GRID:
        trial(stage, replace(stage_table, taste=taste))
    if best_config.knn > 0:
        stage, stage_table = best_config, best_table
        for change in HYBRID_REFINE:
            trial(replace(stage, **change), stage_table)  # type: ignore[arg-type]
    return best_config, points, best_table


def grid_table(result: TuningResult, top: int = 5) -> str:
    """The ``top`` validation points as text (for the CLI and reports)."""
    if not result.points:
        return "no tuning (too few validation cases): defaults kept"
    rows = sorted(result.points, key=lambda p: (-p["hr@20"], -p["mrr@20"]))[:top]
    keys = [k for k in rows[0] if k not in ("hr@20", "mrr@20")]
    lines = ["  ".join(f"{k:>12}" for k in [*keys, "val hr@20", "val mrr@20"])]
    for p in rows:
        cells = [f"{p[k]:>12g}" for k in keys]
        cells += [f"{p['hr@20']:>12.4f}", f"{p['mrr@20']:>12.4f}"]
        lines.append("  ".join(cells))
    return "\n".join(lines)
