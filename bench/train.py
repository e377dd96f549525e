"""Benchmark: train + evaluate the recommender on 1M planted-taste interactions, score everyone.

Data: ``recsys.synthetic`` (100k users, 20k items, ~1M user-item pairs, 5% of items launched
after the split time). Taste is planted through item attributes, so a hybrid model can rank
cold items; popularity and re-engagement (shoppers coming back to viewed items) are planted
too, so the baselines are not strawmen.

Runs ``recsys.pipeline.train_evaluate`` (LightFM on 1 thread, deterministic; ALS on 2; no refit on all data: that is the
publishing step, timed separately when ``--refit`` is given), saves the candidate to a temp
registry, and times top-20 for every user from the saved arrays (the production path).

Prints progress, then as its LAST line one JSON object::

    {"train_s", "score_all_users_s", "ndcg10_vs_popularity", "ndcg10_vs_best_baseline",
     "dod_passed", "deterministic", "evaluate_s_over_fit_s", ...}

``deterministic``: a second fit of the chosen candidate on the same data, config and seed gives
identical arrays. ``evaluate_s_over_fit_s``: evaluation (every model, every segment, and the
bootstrap of the definition of done) over the fitting of every model (goal <= 1).
``lightfm_fit_s_1_thread`` / ``_2_threads``: what determinism costs.

``ndcg10_vs_best_baseline`` is against the brief's baselines (popularity, popularity within
category, item co-occurrence, ALS); ``ndcg10_vs_recently_viewed`` against the extra
re-engagement baseline. CPU seconds and the load average are printed because the machine is
shared: wall-clock figures move with other people's work.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recsys import columns as C  # noqa: E402
from recsys.config import (  # noqa: E402
    ALSConfig,
    EvalConfig,
    LightFMConfig,
    PipelineConfig,
)
from recsys.dod import load_contract  # noqa: E402
from recsys.pipeline import save_result, train_evaluate  # noqa: E402
from recsys.synthetic import SyntheticConfig, generate  # noqa: E402


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--interactions", type=int, default=1_000_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval-users", type=int, default=10_000, help="seeded sample for metrics")
    p.add_argument("--refit", action="store_true", help="also time the refit on all events")
    args = p.parse_args()
    load0 = os.getloadavg()[0]

    t0 = time.perf_counter()
    data = generate(
        SyntheticConfig(
            n_users=args.users,
            n_items=args.items,
            n_interactions=args.interactions,
            n_categories=24,
            n_product_types=96,
            n_colours=12,
            n_brands=60,
            random_state=0,
        )
    )
    say(
        f"generated {len(data.events):,} events for {args.users:,} users x {args.items:,} items "
        f"in {time.perf_counter() - t0:.1f}s (split at {data.split_at})"
    )

    config = PipelineConfig(
        # LightFM stays single-threaded (deterministic); --threads is for ALS
        lightfm=LightFMConfig(num_threads=1),
        als=ALSConfig(num_threads=args.threads),
        evaluation=EvalConfig(max_users=args.eval_users, auc_max_users=2000),
        refit_on_all=args.refit,
    )
    cpu0 = time.process_time()
    result = train_evaluate(
        data.events,
        data.item_features,
        data.user_features,
        config,
        split_at=data.split_at,
        progress=say,
    )
    cand = config.candidate
    train_s = result.timings[f"fit_{cand}_s"]
    say(f"train_evaluate CPU {time.process_time() - cpu0:.0f}s; timings {result.timings}")
    train_cpu_s = result.timings[f"fit_{cand}_cpu_s"]
    for row in result.learning_curve:
        say(f"learning curve {row}")
    best_blend = max(result.blend_search, key=lambda r: r["validation_ndcg@10"], default=None)
    say(f"blend search best {best_blend}")

    m = result.metrics.set_index([C.MODEL, C.SEGMENT])
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20):
        cols = ["n_users", "ndcg@10", "recall@20", "map@10", "auc", "coverage@20", "fit_s"]
        print(result.metrics[[C.MODEL, C.SEGMENT, *cols]].to_string(index=False), flush=True)
    # the candidate the definition of done chose (the blend unless LightFM alone passes and
    # the blend does not); train_s is the blend's fit, which trains LightFM too
    ndcg = m.loc[(result.dod.candidate, C.SEGMENT_ALL), "ndcg@10"]
    contract = load_contract()
    brief = contract["baselines"]
    best_name = max(brief, key=lambda b: m.loc[(b, C.SEGMENT_ALL), "ndcg@10"])
    best = m.loc[(best_name, C.SEGMENT_ALL), "ndcg@10"]
    cold_lfm = m.loc[("lightfm", C.SEGMENT_COLD), "recall@20"]
    cold_cat = m.loc[("category_popularity", C.SEGMENT_COLD), "recall@20"]

    with tempfile.TemporaryDirectory() as tmp:
        version, path = save_result(result, Path(tmp) / "models")
        from recsys import registry, scoring

        saved = registry.load_version(Path(tmp) / "models", version)
        cpu2 = time.process_time()
        t2 = time.perf_counter()
        frame = scoring.recommend_users(saved, k=20)
        score_s = time.perf_counter() - t2
        score_cpu = time.process_time() - cpu2
        say(
            f"top-20 for all {len(saved.users):,} users from saved arrays: {len(frame):,} rows in "
            f"{score_s:.1f}s (CPU {score_cpu:.1f}s)"
        )
        from include.reporting.evaluation import publish_report

        page = publish_report(path / "report.json", Path(tmp) / "reports", version)
        report_kb = page.stat().st_size / 1024
    say(result.dod.summary())
    # reproducible training: the candidate fitted again on the same data, config and seed
    import dataclasses

    import numpy as np

    from recsys.models import LightFMRecommender, make_model

    split = result.split
    t3 = time.perf_counter()
    again = make_model(result.dod.candidate, config).fit(split.test.dataset, split.validation)
    first = result.models[result.dod.candidate].export()
    second = again.export()
    deterministic = all(
        np.array_equal(getattr(first, f), getattr(second, f))
        for f in ("user_embeddings", "user_biases", "item_embeddings", "item_biases")
    ) and (first.blend_weight, first.self_weight) == (second.blend_weight, second.self_weight)
    say(f"second fit of {result.dod.candidate} in {time.perf_counter() - t3:.1f}s: "
        f"{'identical' if deterministic else 'DIFFERENT'}")  # fmt: skip
    # the cost of determinism: LightFM alone with 1 thread (the run) against 2 (Hogwild)
    lfm_1 = result.timings.get("fit_lightfm_s")
    t4 = time.perf_counter()
    LightFMRecommender(dataclasses.replace(config.lightfm, num_threads=2)).fit(
        split.test.dataset, split.validation
    )
    lfm_2 = time.perf_counter() - t4
    evaluate_s = result.timings["evaluate_s"] + result.timings.get("dod_s", 0.0)
    figures = {
        "train_s": round(train_s, 2),
        "score_all_users_s": round(score_s, 2),
        "ndcg10_vs_popularity": round(ndcg / m.loc[("popularity", C.SEGMENT_ALL), "ndcg@10"], 3),
        "ndcg10_vs_best_baseline": round(ndcg / best, 3),
        "best_baseline": best_name,
        "ndcg10_vs_recently_viewed": round(
            ndcg / m.loc[("recently_viewed", C.SEGMENT_ALL), "ndcg@10"], 3
        ),
        "ndcg10": round(float(ndcg), 4),
        "cold_recall20_lightfm_vs_category_popularity": round(cold_lfm / cold_cat, 3)
        if cold_cat > 0
        else None,
        "train_cpu_s": round(train_cpu_s, 1),
        "score_cpu_s": round(score_cpu, 1),
        "best_epoch": result.best_epoch,
        "dod_passed": bool(result.dod.passed),
        "deterministic": bool(deterministic),
        "fit_s": round(result.timings["fit_s"], 1),
        "evaluate_s": round(evaluate_s, 1),
        "evaluate_s_over_fit_s": round(evaluate_s / result.timings["fit_s"], 3),
        "lightfm_fit_s_1_thread": None if lfm_1 is None else round(lfm_1, 1),
        "lightfm_fit_s_2_threads": round(lfm_2, 1),
        "candidate": result.dod.candidate,
        "train_pairs": int(result.split.test.dataset.interactions.nnz),
        "report_kb": round(report_kb, 1),
        "load_avg_1m_start": round(load0, 1),
        "load_avg_1m_end": round(os.getloadavg()[0], 1),
    }
    return figures


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(main()), flush=True)
