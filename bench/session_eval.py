"""Session-last-item figures on every session dataset in ``../shared/data/real`` (issue 19).

Builds one session CSV per dataset under a scratch folder (default ``/tmp/trasos_sessions``;
the real data never enters the repo), runs ``python -m recsys evaluate CSV --protocol
session-last-item`` on each, and prints a table and, as its last line, one JSON object
``{"datasets": {name: <the CLI's JSON>}}``.

    .venv/bin/python bench/session_eval.py [--only retailrocket,yoochoose] [--max-sessions N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = Path(os.environ.get("TRASOS_REAL_DATA", ROOT.parent.parent / "shared" / "data" / "real"))
if not REAL.exists():
    REAL = ROOT.parent / "shared" / "data" / "real"


def yoochoose(out: Path) -> Path:
    d = REAL / "yoochoose_rsc15_100k"
    parts = []
    for name, split in (("train_full", "train"), ("test", "test")):
        f = pd.read_csv(d / f"yoochoose-clicks-100k_{name}.tsv.gz", sep="\t")
        parts.append(
            pd.DataFrame(
                {
                    "session_id": f["SessionId"],
                    "item_id": f["ItemId"],
                    "timestamp": f["Time"],
                    "split": split,
                }
            )
        )
    return _write(pd.concat(parts), out / "yoochoose.csv.gz")


def _processed(folder: str, out: Path, name: str) -> Path:
    f = pd.read_csv(REAL / folder / "sessions_processed.csv.gz")
    frame = f[["session_id", "item_id", "pos", "split"]]
    return _write(frame, out / f"{name}.csv.gz")


def retailrocket(out: Path) -> Path:
    return _processed("retailrocket", out, "retailrocket")


def tmall(out: Path) -> Path:
    return _processed("tmall_sessions", out, "tmall")


def otto(out: Path) -> Path:
    f = pd.read_csv(REAL / "otto_tiny_sample" / "events.csv.gz")
    frame = pd.DataFrame(
        {
            "session_id": f["session"],
            "item_id": f["aid"],
            "timestamp": f["ts_ms"] / 1000.0,
            "event_type": f["type"],
        }
    )
    return _write(frame, out / "otto.csv.gz")


def rees46(out: Path) -> Path:
    f = pd.read_csv(REAL / "rees46_multicategory_sample" / "2019-Oct_head.csv.gz")
    frame = pd.DataFrame(
        {
            "session_id": f["user_session"],
            "item_id": f["product_id"],
            "timestamp": pd.to_datetime(f["event_time"].str.replace(" UTC", ""), utc=True)
            .astype("int64")
            .floordiv(10**9),
            "event_type": f["event_type"],
            "user_id": f["user_id"],
        }
    )
    return _write(frame.dropna(subset=["session_id"]), out / "rees46.csv.gz")


def taobao(out: Path) -> Path:
    """Taobao's 2-hour subset: one session per user (no session ids in the source)."""
    f = pd.read_csv(
        REAL / "taobao_userbehavior_sample" / "UserBehavior_subset.csv.gz",
        header=None,
        names=["user", "item", "category", "behavior", "ts"],
    )
    frame = pd.DataFrame(
        {
            "session_id": f["user"],
            "item_id": f["item"],
            "timestamp": f["ts"],
            "event_type": f["behavior"],
        }
    )
    return _write(frame, out / "taobao.csv.gz")


#: the product events the training snapshot reads (``fct_events``), as the marts see them:
#: bots dropped (ingestion's user-agent and per-minute rules), a device's anonymous events
#: stitched to the last customer seen on it (``int_identities_stitched``)
SIMULATOR_EVENTS_SQL = """
    with raw as (
        select anonymous_id, user_id, item_id, event_type, event_id,
            cast(event_time as timestamp) as event_at, context.user_agent as user_agent
        from read_json_auto(?, format = 'newline_delimited', union_by_name = true)
    ),
    rate_bots as (
        select distinct anonymous_id from raw
        group by anonymous_id, date_trunc('minute', event_at)
        having count(*) > ?
    ),
    human as (
        select * from raw
        where not regexp_matches(coalesce(user_agent, ''), ?)
          and anonymous_id not in (select anonymous_id from rate_bots)
    ),
    devices as (
        select anonymous_id, arg_max(user_id, (event_at, event_id)) as device_user_id
        from human where user_id is not null group by anonymous_id
    )
    select coalesce(h.user_id, d.device_user_id, h.anonymous_id) as user_id,
        h.item_id, h.event_type, h.event_at
    from human h left join devices d using (anonymous_id)
    where h.item_id is not null and h.event_type in (select unnest(?))
"""


def simulator_events(landing: Path):
    """The training snapshot's ``events`` frame (``user_id`` = the stitched visitor,
    ``item_id``, ``event_type``, ``event_at``) from a simulated landing zone, without running
    ingestion and dbt: :data:`SIMULATOR_EVENTS_SQL`."""
    import duckdb

    from common.contracts import PRODUCT_EVENT_TYPES
    from include.ingest.model import BOT_USER_AGENT_RE, IngestConfig

    return duckdb.sql(
        SIMULATOR_EVENTS_SQL,
        params=[
            str(landing / "**" / "*.jsonl.gz"),
            IngestConfig().bot_max_events_per_minute,
            BOT_USER_AGENT_RE,
            list(PRODUCT_EVENT_TYPES),
        ],
    ).df()


def simulator_frame(events) -> pd.DataFrame:
    """The session CSV of the training DAG's protocol (``recsys.session.training``): the same
    sessionisation, the same ``T`` (``recsys.plan.training_plan``), test = the sessions of
    visitors first seen at or after ``T``; ``user_id`` is kept (the taste part pools a
    visitor's sessions)."""
    from recsys.plan import training_plan
    from recsys.session.training import UNUSED, session_split, sessionize

    config, _ = training_plan(events)
    sessions = sessionize(events)
    split_at = sessions["timestamp"].max() - float(config.split.test_days) * 86400.0
    sessions["split"] = session_split(sessions, split_at)
    keep = ["session_id", "item_id", "timestamp", "user_id", "split"]
    return sessions[sessions["split"] != UNUSED][keep]


def simulator(out: Path, seed: int = 7) -> Path:
    """The project's simulator with ``make run``'s configuration (``seed`` apart): its
    product events as the training snapshot holds them, and the training DAG's split."""
    path = out / ("simulator.csv.gz" if seed == 7 else f"simulator_seed{seed}.csv.gz")
    if path.exists():
        return path
    from include.simulator import SimulatorConfig, simulate

    sim_dir = out / f"simulator_seed{seed}"
    simulate(SimulatorConfig(seed=seed), sim_dir, overwrite=True)
    frame = simulator_frame(simulator_events(sim_dir / "landing" / "events"))
    return _write(frame, path)


def simulator_seed11(out: Path) -> Path:
    return simulator(out, seed=11)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if not path.exists():
        tmp = path.with_suffix(".tmp.gz")
        frame.to_csv(tmp, index=False, compression="gzip")
        tmp.replace(path)
    return path


BUILDERS = {
    "yoochoose": yoochoose,
    "retailrocket": retailrocket,
    "tmall": tmall,
    "rees46": rees46,
    "otto": otto,
    "taobao": taobao,
    "simulator": simulator,
    "simulator_seed11": simulator_seed11,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help="comma-separated dataset names")
    p.add_argument("--out", default="/tmp/trasos_sessions", help="scratch folder for the CSVs")
    p.add_argument("--max-sessions", type=int, default=None)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--csv", action="append", default=[], help="extra session CSV (name=path)")
    p.add_argument("--json-out", type=Path, default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.only.split(",") if n] or list(BUILDERS)
    files = {n: BUILDERS[n](out) for n in names if n in BUILDERS}
    for extra in args.csv:
        name, _, path = extra.partition("=")
        files[name] = Path(path)
    results: dict[str, dict] = {}
    for name, path in files.items():
        cmd = [sys.executable, "-m", "recsys", "evaluate", str(path)]
        cmd += ["--protocol", "session-last-item", "--seed", str(args.seed)]
        if args.max_sessions:
            cmd += ["--max-sessions", str(args.max_sessions)]
        run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            print(f"{name}: failed\n{run.stderr}", file=sys.stderr)
            continue
        results[name] = json.loads(run.stdout.strip().splitlines()[-1])
    header = f"{'dataset':<14}{'cases':>7}  {'model':<14}{'HR@20':>8}{'MRR@20':>8}  x cooc HR  x cooc MRR"
    print(header)
    for name, res in results.items():
        base = res["models"]["cooccurrence"]
        for model, m in res["models"].items():
            rh = m["hr@20"] / base["hr@20"] if base["hr@20"] else float("nan")
            rm = m["mrr@20"] / base["mrr@20"] if base["mrr@20"] else float("nan")
            print(
                f"{name:<14}{res['n_test_sessions']:>7}  {model:<14}{m['hr@20']:>8.4f}"
                f"{m['mrr@20']:>8.4f}  {rh:>9.3f}  {rm:>10.3f}"
            )
    if args.json_out is not None:
        args.json_out.write_text(json.dumps({"datasets": results}, indent=1) + "\n")
    print(json.dumps({"datasets": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
