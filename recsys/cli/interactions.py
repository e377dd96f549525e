"""``python -m recsys evaluate FILE --protocol leave-last-out|time``: any interactions file.

The file is a CSV (or CSV.gz) with ``user_id``, ``item_id`` and an order column
(``timestamp``: seconds since the epoch or an ISO date; or ``seq_pos``: the position in the
user's history), optionally ``event_type`` (``product_view``, ``add_to_wishlist``,
``add_to_cart``, ``purchase`` weigh 1/2/3/5 as in the shop; other values weigh 1).

``leave-last-out``
    Per user, repeated interactions with an item count once, at their first position. The
    last item is the test item, the one before it validates (early stopping, blend weights),
    the rest trains; the models evaluated on the test item are fitted on everything but it
    (training + validation item). Users with fewer than 3 distinct items only train. Every
    item is ranked, the user's training items excluded.
``time``
    Needs ``timestamp``. The last 20 % of the interactions (by time) are the test window, the
    validation slice before it is half as long; relevant = every test interaction of a user
    known before the split with an item not in their training history.

The baselines ``popularity``, ``cooccurrence`` and ``als``, LightFM alone (``lightfm``) and
the blend (``lightfm_blend``) are fitted and judged by the shipped definition of done (paired
bootstrap intervals), less its clauses about models a bare file cannot support
(:data:`BASELINES`). Prints the table,
the verdict, and as its last line one JSON object (see ``main``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import columns as C
from recsys.config import DEFAULT_EVENT_WEIGHTS, PipelineConfig, with_seed
from recsys.data import Holdout, IdMap, SplitData, build_dataset

ORDER_COLUMNS = ("timestamp", "seq_pos")
#: leave-last-out has no clock: recency (``decayed_score``) halves every this many positions
#: back in the user's history (the blend's co-occurrence part and ``recently_viewed`` use it).
POSITION_HALF_LIFE = 10.0
MIN_DISTINCT_ITEMS = 3  # a test item, a validation item and at least one to train on
TIME_TEST_SHARE = 0.2
#: the baselines a bare interactions file supports: without categories
#: ``category_popularity`` is popularity, and with every training item excluded
#: ``recently_viewed`` is popularity too, so both are left out (with their clauses)
BASELINES = ("popularity", "cooccurrence", "als")
#: what the CSV protocols fit: no catalog attributes, so identity features only
FEATURES = dict(
    item_feature_columns=(),
    user_feature_columns=(),
    n_preferred_categories=0,
    user_identity_share=None,
    user_history_share=1.0,  # users as the mean of their items (see FeatureConfig)
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-users",
        type=int,
        default=None,
        help="leave-last-out/time: keep a seeded sample of at most N users (all their rows)",
    )


# --- reading ---------------------------------------------------------------------------------
def read_interactions(
    path: str | Path, max_users: int | None = None, seed: int = 42
) -> tuple[pd.DataFrame, str]:
    """The CSV as ``user_id, item_id, <order>, weight, strong`` and the order column's name.

    ``weight`` is the event weight (1 without ``event_type``); ``strong`` marks carts and
    purchases (every row without ``event_type``).
    """
    head = pd.read_csv(path, nrows=0).columns
    missing = [c for c in (C.USER_ID, C.ITEM_ID) if c not in head]
    order = next((c for c in ORDER_COLUMNS if c in head), None)
    if missing or order is None:
        raise ValueError(
            f"{path}: needs columns user_id, item_id and one of {ORDER_COLUMNS} "
            f"(optional event_type); it has {list(head)}"
        )
    cols = [C.USER_ID, C.ITEM_ID, order] + ([C.EVENT_TYPE] if C.EVENT_TYPE in head else [])
    frame = pd.read_csv(
        path, usecols=cols, dtype={C.USER_ID: str, C.ITEM_ID: str, C.EVENT_TYPE: str}
    )
    frame = frame.dropna(subset=[C.USER_ID, C.ITEM_ID, order]).reset_index(drop=True)
    if max_users is not None:
        users = np.sort(frame[C.USER_ID].unique())
        if len(users) > max_users:
            rng = np.random.default_rng(seed)
            keep = rng.choice(users, size=max_users, replace=False)
            frame = frame[frame[C.USER_ID].isin(keep)].reset_index(drop=True)
    if C.EVENT_TYPE in frame:
        et = frame[C.EVENT_TYPE]
        frame["weight"] = et.map(dict(DEFAULT_EVENT_WEIGHTS)).fillna(1.0).astype(np.float64)
        frame["strong"] = et.isin((C.CART, C.PURCHASE)).to_numpy()
        if not frame["strong"].any():  # views/clicks only: every interaction is strong
            frame["strong"] = True
    else:
        frame["weight"] = 1.0
        frame["strong"] = True
    return frame, order


def _order_values(frame: pd.DataFrame, order: str) -> np.ndarray:
    values = frame[order]
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(np.float64)
    return pd.to_datetime(values, utc=True).astype("int64").to_numpy() / 1e9


# --- leave-last-out --------------------------------------------------------------------------
def _interactions(pairs: pd.DataFrame) -> pd.DataFrame:
    """``ml_interactions``-shaped frame from per-pair ``weight``, ``decayed``, ``strong``."""
    return pd.DataFrame(
        {
            C.USER_ID: pairs[C.USER_ID].to_numpy(),
            C.ITEM_ID: pairs[C.ITEM_ID].to_numpy(),
            C.WEIGHT: pairs["weight"].to_numpy(np.float64),
            C.DECAYED_SCORE: pairs["decayed"].to_numpy(np.float64),
            C.N_VIEWS: 0,
            C.N_CARTS: pairs["strong"].to_numpy().astype(np.int64),
            C.N_PURCHASES: 0,
        }
    )


def _pairs_before(events: pd.DataFrame, cut: np.ndarray) -> pd.DataFrame:
    """Per ``(user, item)``: summed weight of the events at positions before the user's
    ``cut`` (row-aligned with ``events``), whether any was strong, and the position-decayed
    recency (``0.5 ** (distinct items since / POSITION_HALF_LIFE)``)."""
    ev = events.loc[events["pos"].to_numpy() < cut]
    g = ev.groupby(["u", "i"], sort=False)
    pairs = g.agg(
        weight=("weight", "sum"), strong=("strong", "any"), last=("pos", "max")
    ).reset_index()
    pairs = pairs.sort_values(["u", "last"], kind="stable")
    back = pairs.groupby("u").cumcount(ascending=False).to_numpy()
    pairs["decayed"] = pairs["weight"].to_numpy() * np.power(0.5, back / POSITION_HALF_LIFE)
    return pairs


def leave_last_out_split(
    frame: pd.DataFrame, order: str, config: PipelineConfig
) -> tuple[SplitData, dict]:
    """Test = each user's last distinct item, validation = the one before, the rest trains.

    Returns the split (``split.split`` is None: there is no split time) and its counts.
    """
    fc = dataclasses.replace(config.features, **FEATURES)
    t = _order_values(frame, order)
    ev = pd.DataFrame(
        {
            "u": pd.factorize(frame[C.USER_ID])[0],
            "i": pd.factorize(frame[C.ITEM_ID])[0],
            "t": t,
            "row": np.arange(len(frame)),
            "weight": frame["weight"].to_numpy(np.float64),
            "strong": frame["strong"].to_numpy(bool),
        }
    )
    user_ids = np.asarray(pd.factorize(frame[C.USER_ID])[1], dtype=object)
    item_ids = np.asarray(pd.factorize(frame[C.ITEM_ID])[1], dtype=object)
    ev = ev.sort_values(["u", "t", "row"], kind="stable").reset_index(drop=True)
    ev["pos"] = ev.groupby("u").cumcount().to_numpy()
    first = ev.groupby(["u", "i"], sort=False)["pos"].min().reset_index()  # distinct items
    first = first.sort_values(["u", "pos"], kind="stable")
    rank_back = first.groupby("u").cumcount(ascending=False).to_numpy()
    n_distinct = first.groupby("u")["i"].transform("size").to_numpy()
    evaluated = n_distinct >= MIN_DISTINCT_ITEMS
    test_pairs = first[(rank_back == 0) & evaluated]
    val_pairs = first[(rank_back == 1) & evaluated]
    n_users = len(user_ids)
    big = np.iinfo(np.int64).max
    cut_test = np.full(n_users, big)
    cut_test[test_pairs["u"].to_numpy()] = test_pairs["pos"].to_numpy()
    cut_val = np.full(n_users, big)
    cut_val[val_pairs["u"].to_numpy()] = val_pairs["pos"].to_numpy()
    u_of_ev = ev["u"].to_numpy()

    def named(pairs: pd.DataFrame) -> pd.DataFrame:
        return pairs.assign(
            **{
                C.USER_ID: user_ids[pairs["u"].to_numpy()],
                C.ITEM_ID: item_ids[pairs["i"].to_numpy()],
            }
        )

    train_pairs = named(_pairs_before(ev, cut_test[u_of_ev]))
    inner_pairs = named(_pairs_before(ev, cut_val[u_of_ev]))
    catalog = pd.DataFrame({C.ITEM_ID: item_ids.astype(str)})
    users = IdMap.from_values(user_ids)
    items = IdMap.from_values(item_ids)
    common = dict(users=users, items=items, known_positives="interacted")
    train_ds = build_dataset(_interactions(train_pairs), catalog, None, fc, **common)
    inner_ds = build_dataset(_interactions(inner_pairs), catalog, None, fc, like=train_ds)

    def holdout(ds, pairs: pd.DataFrame) -> Holdout:
        u = users.index(user_ids[pairs["u"].to_numpy()])
        i = items.index(item_ids[pairs["i"].to_numpy()])
        truth = sp.csr_matrix(
            (np.ones(len(u), dtype=np.float32), (u, i)), shape=(ds.n_users, ds.n_items)
        )
        truth = sp.csr_matrix(truth - truth.multiply(ds.known_positives > 0), dtype=np.float32)
        truth.eliminate_zeros()
        truth.sort_indices()
        return Holdout(
            dataset=ds,
            truth=truth,
            candidates=np.ones(ds.n_items, dtype=bool),
            cold_items=np.zeros(ds.n_items, dtype=bool),
            split_at=pd.NaT,
            stats={"eval_users": int((np.diff(truth.indptr) > 0).sum())},
        )

    test = holdout(train_ds, test_pairs)
    validation = holdout(inner_ds, val_pairs)
    facts = {
        "rows": int(len(frame)),
        "users": int(n_users),
        "items": int(len(item_ids)),
        "train_pairs": int(train_ds.interactions.nnz),
        "users_with_test_item": int(len(test_pairs)),
    }
    return SplitData(split=None, test=test, validation=validation), facts  # type: ignore[arg-type]


# --- time ------------------------------------------------------------------------------------
def time_split_data(frame: pd.DataFrame, order: str, config: PipelineConfig) -> tuple:
    """The pipeline's time split on the file: ``(split, config used, counts)``."""
    from recsys.data import prepare_split

    if order != "timestamp":
        raise ValueError("--protocol time needs a timestamp column (seq_pos has no clock)")
    values = frame[order]
    at = (
        pd.to_datetime(values, unit="s")
        if pd.api.types.is_numeric_dtype(values)
        else pd.to_datetime(values, utc=True).dt.tz_convert("UTC").dt.tz_localize(None)
    )
    et = frame[C.EVENT_TYPE] if C.EVENT_TYPE in frame else pd.Series(C.PURCHASE, index=frame.index)
    known = {name for name, _ in DEFAULT_EVENT_WEIGHTS}
    events = pd.DataFrame(
        {
            C.USER_ID: frame[C.USER_ID],
            C.ITEM_ID: frame[C.ITEM_ID],
            C.EVENT_TYPE: np.where(et.isin(known), et, C.VIEW),
            C.EVENT_AT: at,
        }
    )
    split_at = at.quantile(1.0 - TIME_TEST_SHARE)
    test_days = (at.max() - split_at).total_seconds() / 86400 + 1e-6
    config = dataclasses.replace(
        config,
        features=dataclasses.replace(config.features, **FEATURES),
        split=dataclasses.replace(
            config.split,
            test_days=test_days,
            validation_days=test_days / 2,
            relevance="any",
            known_positives="interacted",
        ),
        refit_on_all=False,
    )
    catalog = pd.DataFrame({C.ITEM_ID: frame[C.ITEM_ID].unique().astype(str)})
    split = prepare_split(events, catalog, None, config.features, config.split, split_at)
    facts = {
        "rows": int(len(frame)),
        "split_at": str(split.split.split_at),
        "train_pairs": int(split.test.dataset.interactions.nnz),
    }
    return split, config, facts


# --- the command -----------------------------------------------------------------------------
def cli_config(seed: int) -> PipelineConfig:
    """The configuration the command evaluates with: the shipped defaults, every seed = seed,
    co-occurrence on every interaction (files rarely say which were purchases), users
    represented by their items for LightFM."""
    base = with_seed(PipelineConfig(), seed)
    return dataclasses.replace(
        base,
        baselines=BASELINES,
        features=dataclasses.replace(base.features, **FEATURES),
        cooccurrence=dataclasses.replace(base.cooccurrence, source="any"),
        # identity-only items and history-only users: stronger regularisation than the
        # shop's attribute-rich features need (validation nDCG peaked higher at 1e-4)
        lightfm=dataclasses.replace(base.lightfm, item_alpha=1e-4, user_alpha=1e-4),
    )


def cli_contract(config: PipelineConfig, seed: int) -> dict:
    """The shipped definition of done without the clauses about models this protocol does
    not evaluate (see :data:`BASELINES`); bootstrap seeded with ``seed``."""
    from recsys.dod import load_contract
    from recsys.models import LightFMRecommender

    contract = load_contract(None)
    evaluated = {*config.baselines, config.candidate, LightFMRecommender.name}
    evaluated |= set(contract.get("candidates", []))

    def about_evaluated(clause: dict) -> bool:
        names = {clause.get("model", "candidate"), clause.get("compare_to", "candidate")}
        return names <= evaluated | {"candidate", "best_baseline"}

    contract["clauses"] = [c for c in contract["clauses"] if about_evaluated(c)]
    contract["baselines"] = [b for b in contract.get("baselines", []) if b in evaluated]
    contract["bootstrap"] = {**contract.get("bootstrap", {}), "seed": seed}
    return contract


def summary_json(
    protocol: str, fitted, n_test_users: int, elapsed: dict, contract: dict | None = None
) -> dict:
    """The last line: protocol, verdict, the model that would be published, per-model figures,
    and LightFM alone against ALS (nDCG@10 ratio with its paired bootstrap interval)."""
    from recsys.bootstrap import BootstrapConfig, paired_ratio
    from recsys.dod import bootstrap_config, fallback_baseline

    table = fitted.metrics
    allseg = table[table[C.SEGMENT] == C.SEGMENT_ALL].set_index(C.MODEL)
    dod = fitted.dod
    published = dod.candidate if dod.passed else fallback_baseline(table)

    def num(v) -> float | None:
        v = float(v)
        return None if np.isnan(v) else round(v, 6)

    models = {
        name: {
            "ndcg@10": num(row["ndcg@10"]),
            "hr@10": num(row["hit_rate@10"]),
            "recall@20": num(row["recall@20"]),
            "fit_s": num(row[C.FIT_S]),
        }
        for name, row in allseg.iterrows()
    }
    out = {
        "protocol": protocol,
        "n_test_users": int(n_test_users),
        "candidate": published,
        "dod_passed": bool(dod.passed),
        "models": models,
        "fit_s": round(elapsed["fit_s"], 2),
        "evaluate_s": round(elapsed["evaluate_s"], 2),
    }
    per_user = fitted.evaluation.per_user
    if {"lightfm", "als"} <= per_user.keys():
        # the "LightFM alone >= 0.6x ALS": with its 95 % paired bootstrap interval,
        # so a ratio built on a handful of hits reads as what it is
        ratio, lo, hi = paired_ratio(
            per_user["lightfm"][C.SEGMENT_ALL]["ndcg@10"],
            per_user["als"][C.SEGMENT_ALL]["ndcg@10"],
            bootstrap_config(contract) if contract else BootstrapConfig(),
        )
        out["lightfm_vs_als"] = {"ndcg@10": num(ratio), "ci95": [num(lo), num(hi)]}
    blend = fitted.models.get("lightfm_blend")
    if blend is not None and hasattr(blend, "weight_"):
        # each part's weight in the blended score: (1-w)(1-a) LightFM, (1-w) a ALS, w co-occ.
        w, a = blend.weight_, blend.als_weight_
        out["blend_shares"] = {
            "lightfm": round((1 - w) * (1 - a), 3),
            "als": round((1 - w) * a, 3),
            "cooccurrence": round(w, 3),
        }
    return out


def main(args: argparse.Namespace) -> int:
    from recsys.pipeline import fit_and_evaluate

    def say(msg: str) -> None:
        print(f"[evaluate {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    frame, order = read_interactions(args.path, args.max_users, args.seed)
    config = cli_config(args.seed)
    if args.protocol == "leave-last-out":
        split, facts = leave_last_out_split(frame, order, config)
    else:
        split, config, facts = time_split_data(frame, order, config)
    say(f"read and split {args.path} in {time.perf_counter() - t0:.1f}s: {facts}")
    contract = cli_contract(config, args.seed)
    n_test = len(split.test.eval_users)
    if n_test == 0:
        print(f"{args.path}: no user has a test item; nothing to evaluate", file=sys.stderr)
        return 2
    fitted = fit_and_evaluate(split, config, contract, say)
    tm = fitted.timings
    elapsed = {"fit_s": tm["fit_s"], "evaluate_s": tm["evaluate_s"] + tm["dod_s"]}
    table = fitted.metrics
    cols = [C.MODEL, C.N_USERS, "ndcg@10", "hit_rate@10", "recall@20", "coverage@20", C.FIT_S]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.loc[table[C.SEGMENT] == C.SEGMENT_ALL, cols].to_string(index=False))
    print(fitted.dod.summary())
    print(
        f"fit {elapsed['fit_s']:.1f}s, evaluate {elapsed['evaluate_s']:.1f}s "
        f"(of which definition of done {tm['dod_s']:.1f}s)"
    )
    summary = summary_json(args.protocol, fitted, n_test, elapsed, contract)
    print(json.dumps(summary), flush=True)
    from recsys.tracking import log_cli_evaluation  # MLflow; a warning if unreachable

    log_cli_evaluation(args, config, fitted, summary)
    return 0
