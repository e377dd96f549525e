"""Offline evaluation of the recommender on real public datasets, through the platform.

For each dataset: its loader fills a fresh landing zone (``include.loaders``), ingestion
builds the raw lake (``include.ingest``), ``dbt build`` the DE models, the training
snapshot is read from the marts exactly as ``recommender_train`` reads it
(:data:`include.tasks.training.SNAPSHOT_QUERIES`), and :func:`recsys.pipeline.train_evaluate`
fits the candidates and every baseline on one time split and checks the definition of done.
The real samples span hours to years, so the split is placed at a quantile of the events
(default: the last 20 % of the events are the test window; the validation slice before
``T`` is half as long in time) instead of the default 14 days.

Writes ``docs/evaluation.md`` (one table per dataset, with the split and its counts) and
prints progress. Usage::

    python -m include.tasks.evaluation amazon_grocery rees46 yoochoose retailrocket hm [--out ...]
    make evaluate
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from include.settings import REPO_ROOT

METRICS = ("ndcg@10", "recall@20", "map@10", "hit_rate@10", "auc", "coverage@20")
DEFAULT_DATASETS = ("amazon_grocery", "rees46", "yoochoose", "retailrocket", "hm")
#: Which test interactions count as relevant. The samples are hours long, so too few users
#: cart or buy in both halves: every product interaction counts ("any"), except H&M
#: (purchases only).
RELEVANCE = {"hm": "purchase", "amazon_grocery": "purchase"}


def say(msg: str) -> None:
    print(f"[evaluate {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _run(args: list[str], env: dict[str, str], what: str) -> str:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, cwd=REPO_ROOT)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def build_marts(dataset: str, data_dir: Path) -> None:
    """Loader -> ingestion -> dbt build (DE models) into ``data_dir``."""
    from include.transform import DE_SELECT

    env = {
        **os.environ,
        "TRASOS_DATA_DIR": str(data_dir),
        "TRASOS_STATE_DIR": str(data_dir / "_state"),
    }
    env.pop("TRASOS_WAREHOUSE", None)
    py = sys.executable
    say(f"{dataset}: loader")
    _run([py, "-m", "include.loaders", dataset], env, f"loader {dataset}")
    say(f"{dataset}: ingestion")
    summary = json.loads(_run([py, "-m", "include.ingest", "--json"], env, "ingestion"))
    say(f"{dataset}: {summary.get('events_loaded', summary)} events loaded; dbt build")
    _run([py, "-m", "include.transform", "build", "--select", *DE_SELECT], env, "dbt build")


def read_snapshot(data_dir: Path) -> dict:
    """The training inputs, read from the marts as ``include.tasks.training`` reads them."""
    from include.tasks.training import read_training_frames
    from include.warehouse import connect

    with connect(read_only=True, path=data_dir / "warehouse.duckdb") as con:
        return read_training_frames(con, ("events", "items", "users"))


def evaluate(dataset: str, data_dir: Path, test_share: float = 0.2) -> dict:
    """Train and evaluate candidates and baselines on one dataset's marts."""
    from recsys import columns as C
    from recsys.config import DEFAULT_PIPELINE
    from recsys.pipeline import train_evaluate
    from recsys.plan import quantile_split

    snap = read_snapshot(data_dir)
    ev = snap["events"]
    t_min, t_max = ev["event_at"].min(), ev["event_at"].max()
    split_at, test_days = quantile_split(ev["event_at"], test_share)
    cfg = dataclasses.replace(
        DEFAULT_PIPELINE,
        split=dataclasses.replace(
            DEFAULT_PIPELINE.split,
            test_days=test_days,
            validation_days=test_days / 2,
            relevance=RELEVANCE.get(dataset, "any"),
        ),
        refit_on_all=False,
    )
    say(f"{dataset}: {len(ev):,} product events, {t_min} .. {t_max}; split at {split_at}")
    result = train_evaluate(ev, snap["items"], snap["users"], cfg, split_at=split_at)
    table = result.metrics
    from recsys.session.training import train_session_model  # issue 19: same split T

    session = train_session_model(ev, split_at=split_at).metrics()
    return {
        "dataset": dataset,
        "relevance": cfg.split.relevance,
        "events": int(len(ev)),
        "time_range": f"{t_min} .. {t_max}",
        "split_at": str(split_at),
        "test_days": round(test_days, 3),
        "snapshot": result.snapshot,
        "dod": result.dod.to_dict(),
        "table": table[[C.MODEL, C.SEGMENT, C.N_USERS, *METRICS]].to_dict(orient="records"),
        "session": session,
    }


def markdown(results: list[dict]) -> str:
    lines = [
        "# Offline evaluation on real datasets",
        "",
        f"Generated by `make evaluate` (`python -m include.tasks.evaluation`) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Each dataset went through its loader, "
        "ingestion, the dbt models and the training snapshot, like `make run DATASET=...`; "
        "then `recsys.pipeline.train_evaluate` fitted the candidates (`lightfm_blend`, "
        "`lightfm`) and the baselines on one time split (the best candidate that passes the "
        "definition of done is the one named): events before `T` train, the last 20 % of the events "
        "are the test window, validation is the slice before `T` half as long in time. "
        "Relevant = the test interactions of the kind named per dataset, for users and items "
        "known at `T`; users' already-bought items are filtered. Numbers are for this sample "
        "only (most samples span hours to days), not comparable to published full-data results "
        "(see ../shared/data/real/REFERENCE_RESULTS.md).",
        "",
        "Read the user counts first: a user-level time split keeps only users seen before `T`. "
        "Amazon Grocery (years of reviews by returning customers) and REES46 (hundreds of "
        "returning visitors within three hours) give tables worth reading; in YOOCHOOSE, "
        "RetailRocket and H&M few people return inside the sample, the tables rest on 11-40 "
        "users, the definition of done rightly refuses them (`enough_users_evaluated`) and "
        "their differences are noise. On short clickstreams re-showing what the user viewed "
        "(`recently_viewed`) and ALS are the strong baselines and plain LightFM is weak; on "
        "Amazon Grocery, with no item attributes but a category id, LightFM alone is close to "
        "popularity (its shared features outweigh the item identity under equal feature "
        "weights) and the blend earns its place through its ALS and co-occurrence parts.",
        "",
    ]
    for r in results:
        snap = r["snapshot"]
        lines += [
            f"## {r['dataset']}",
            "",
            f"- events (product events in the marts): {r['events']:,}; time range {r['time_range']}",
            f"- split at `T = {r['split_at']}`, test window {r['test_days']} days; relevance: "
            f"`{r['relevance']}`",
            f"- training: {snap['train_users']:,} users x {snap['items']:,} items, "
            f"{snap['train_interactions']:,} user-item pairs; test: {snap['test_eval_users']:,} "
            f"users with {snap['test_relevant_pairs']:,} relevant pairs "
            f"({snap['test_dropped_unknown_user']:,} pairs of users unknown at T dropped); "
            f"{snap['cold_items']:,} cold items",
            f"- definition of done: **{'passed' if r['dod']['passed'] else 'failed'}** "
            f"(`{r['dod']['candidate']}`)"
            + (
                " (failed: "
                + ", ".join(c["id"] for c in r["dod"]["clauses"] if c["status"] == "fail")
                + ")"
                if not r["dod"]["passed"]
                else ""
            ),
            "",
            "| model | segment | users | " + " | ".join(METRICS) + " |",
            "|---|---|---:|" + "---:|" * len(METRICS),
        ]
        for row in r["table"]:
            if row["segment"] == "warm" or not row["n_users"]:
                continue
            vals = " | ".join(
                "–" if row[m] != row[m] else f"{row[m]:.4f}"
                for m in METRICS  # NaN -> dash
            )
            lines.append(f"| {row['model']} | {row['segment']} | {row['n_users']} | {vals} |")
        lines.append("")
        lines += session_lines(r.get("session"))
    return "\n".join(lines + session_section())


SESSION_JSON = REPO_ROOT / "docs" / "session_evaluation.json"


def session_lines(m: dict | None) -> list[str]:
    """The session-last-item table of one dataset (visitors unknown at ``T``; issue 19)."""
    if not m:
        return []
    clause = m["clause"]
    lines = [
        f"Session model (`session-last-item`, sessions of visitors unknown at `T`): "
        f"{m['n_test_sessions']:,} test sessions; clause `{clause['id']}` **{clause['status']}**",
        "",
        "| model | HR@20 | MRR@20 |",
        "|---|---:|---:|",
    ]
    for name, v in m["models"].items():
        lines.append(f"| {name} | {v['hr@20']:.4f} | {v['mrr@20']:.4f} |")
    return [*lines, ""]


def session_section(path: Path = SESSION_JSON) -> list[str]:
    """The session datasets' table from ``bench/session_eval.py --json-out`` (the CLI protocol)."""
    if not path.exists():
        return []
    results = json.loads(path.read_text(encoding="utf-8"))["datasets"]
    lines = [
        "## Session-based recommendation: the CLI protocol on every session dataset",
        "",
        "`.venv/bin/python bench/session_eval.py --json-out docs/session_evaluation.json` "
        "builds one session CSV per dataset (outside the repo) and runs `python -m recsys "
        "evaluate CSV --protocol session-last-item` on each: for every test session of >= 2 "
        "events all but the last event are revealed and every item is ranked for the last one "
        "(revealed items excluded, so a last event that repeats a revealed item is a miss for "
        "every model). Splits: the files' own (YOOCHOOSE last day, RetailRocket last 7 days, "
        "Tmall as published), else the last 10 % of sessions by time (REES46, OTTO, Taobao); "
        "the simulator (`make run`'s configuration; seed 7 is `make run`'s data, seed 11 a "
        "second draw): its product events as the training snapshot holds them (bots dropped by "
        "ingestion's rules, a device's events stitched to its customer), split as the training "
        "DAG splits them (test = the sessions of visitors first seen in the last 7 days), so "
        "its row is the figure `recommender_train` gates on. A visitor's sessions are pooled "
        "by the taste part of the item table where the file names visitors (the simulator, "
        "REES46). `session_stan`'s hyper-parameters are chosen on the last 10 % of the "
        "training sessions, never on test.",
        "",
        "| dataset | test sessions | model | HR@20 | MRR@20 | HR vs cooccurrence | "
        "MRR vs cooccurrence |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, res in results.items():
        base = res["models"]["cooccurrence"]
        for model, v in res["models"].items():
            hr = v["hr@20"] / base["hr@20"] if base["hr@20"] else float("nan")
            mrr = v["mrr@20"] / base["mrr@20"] if base["mrr@20"] else float("nan")
            lines.append(
                f"| {name} | {res['n_test_sessions']:,} | {model} | {v['hr@20']:.4f} | "
                f"{v['mrr@20']:.4f} | {hr:.3f} | {mrr:.3f} |"
            )
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m include.tasks.evaluation", description=__doc__)
    p.add_argument("datasets", nargs="*", default=list(DEFAULT_DATASETS))
    p.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "evaluation.md")
    p.add_argument("--test-share", type=float, default=0.2)
    args = p.parse_args(argv)
    results = []
    for name in args.datasets:
        with tempfile.TemporaryDirectory(prefix=f"trasos-eval-{name}-") as tmp:
            data_dir = Path(tmp)
            build_marts(name, data_dir)
            results.append(evaluate(name, data_dir, args.test_share))
        best = {
            row["model"]: row["ndcg@10"] for row in results[-1]["table"] if row["segment"] == "all"
        }
        say(f"{name}: nDCG@10 " + ", ".join(f"{k} {v:.4f}" for k, v in best.items()))
    args.out.write_text(markdown(results), encoding="utf-8")
    say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
