"""Research notebook (marimo): from a DE sample to a candidate compared with the champion.

Open it:      make notebook        (marimo's editor on 127.0.0.1, with its access token)
Run headless: .venv/bin/python notebooks/research.py
Static page:  .venv/bin/marimo export html notebooks/research.py -o research.html

Data (``TRASOS_NOTEBOOK_DATA``, else the newest of these under ``$TRASOS_DATA_DIR``):
a sample folder from ``make sample`` (``samples/<id>/`` with ``fct_events.parquet``,
``ml_item_features.parquet``, ``ml_user_features.parquet`` and ``card.json``), or else the
newest training snapshot (``models/_snapshots/<run>/`` with ``events``, ``items``, ``users``).
``TRASOS_NOTEBOOK_QUICK=1`` trains with few epochs and small grids (the tests use it).

The champion is the configuration of the served version (``models/current/config.json``),
or the shipped one when nothing was published yet; the variant changes LightFM's components
and loss. Both go through the same split, the same models, the same evaluation and the same
definition of done (``recsys.pipeline.fit_and_evaluate``); the run is logged to MLflow in the
experiment ``research`` (``make mlflow``). The last line printed is one JSON object.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import dataclasses
    import json
    import os
    from pathlib import Path

    import marimo as mo
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from include.settings import get_settings
    from recsys import columns as C
    from recsys import registry, tracking
    from recsys.config import config_to_dict, pipeline_config_from_dict
    from recsys.data import prepare_split
    from recsys.dod import load_contract
    from recsys.pipeline import fit_and_evaluate
    from recsys.plan import training_plan

    return (
        C,
        Path,
        config_to_dict,
        dataclasses,
        fit_and_evaluate,
        get_settings,
        json,
        load_contract,
        mo,
        os,
        pd,
        pipeline_config_from_dict,
        plt,
        prepare_split,
        registry,
        tracking,
        training_plan,
    )


@app.cell
def _(Path, get_settings, os):
    settings = get_settings()
    quick = os.environ.get("TRASOS_NOTEBOOK_QUICK", "") not in ("", "0")

    def find_source() -> tuple[str, Path]:
        """(kind, folder): the folder named by TRASOS_NOTEBOOK_DATA, else the newest sample
        with events, else the newest training snapshot."""
        named = os.environ.get("TRASOS_NOTEBOOK_DATA")
        candidates = [Path(named)] if named else []
        samples = settings.data_dir / "samples"
        snapshots = settings.models_dir / "_snapshots"
        newest = lambda d: sorted(d.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)  # noqa: E731
        if not named:
            candidates += newest(samples) if samples.exists() else []
            candidates += newest(snapshots) if snapshots.exists() else []
        for folder in candidates:
            if (folder / "fct_events.parquet").exists():
                return "sample", folder
            if (folder / "events.parquet").exists():
                return "snapshot", folder
        raise FileNotFoundError(
            f"no data: ask for a sample (make sample ARGS='--sources fct_events ml_item_features "
            f"ml_user_features --fraction 0.1'), run the training once (make run), or set "
            f"TRASOS_NOTEBOOK_DATA to such a folder (looked in {samples} and {snapshots})"
        )

    source_kind, source_dir = find_source()
    return quick, settings, source_dir, source_kind


@app.cell
def _(C, json, mo, pd, source_dir, source_kind):
    def load(kind, folder):
        """events (user_id, item_id, event_type, event_at), items, users; the data card."""
        if kind == "sample":
            ev = pd.read_parquet(folder / "fct_events.parquet")
            if C.USER_ID not in ev:
                ev = ev.rename(columns={"visitor_id": C.USER_ID})
            ev = ev[ev[C.ITEM_ID].notna()]
            it = pd.read_parquet(folder / "ml_item_features.parquet")
            us_path = folder / "ml_user_features.parquet"
            us = pd.read_parquet(us_path) if us_path.exists() else None
            card_path = folder / "card.json"
            card = json.loads(card_path.read_text()) if card_path.exists() else {}
        else:
            ev = pd.read_parquet(folder / "events.parquet")
            it = pd.read_parquet(folder / "items.parquet")
            us = pd.read_parquet(folder / "users.parquet")
            card = {"id": folder.name, "kind": "training snapshot"}
        cols = [C.USER_ID, C.ITEM_ID, C.EVENT_TYPE, C.EVENT_AT]
        ev = ev[cols].copy()
        ev[C.EVENT_AT] = pd.to_datetime(ev[C.EVENT_AT])
        return ev, it, us, card

    events, items, users, card = load(source_kind, source_dir)
    mo.md(
        f"## Data: {source_kind} `{source_dir.name}`\n\n"
        f"{len(events):,} events, {events[C.USER_ID].nunique():,} users, "
        f"{events[C.ITEM_ID].nunique():,} items, {events[C.EVENT_AT].min()} to "
        f"{events[C.EVENT_AT].max()}. Card: `{json.dumps(card.get('request', card))[:300]}`"
    )
    return card, events, items, users


@app.cell
def _(C, events, plt):
    # Exploration: activity over time by event type, the items' long tail, users' activity
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    per_day = (
        events.assign(day=events[C.EVENT_AT].dt.floor("D"))
        .groupby(["day", C.EVENT_TYPE])
        .size()
        .unstack(fill_value=0)
    )
    per_day.plot(ax=axes[0], title="events per day by type")
    item_counts = events.groupby(C.ITEM_ID).size().sort_values(ascending=False).to_numpy()
    axes[1].loglog(range(1, len(item_counts) + 1), item_counts)
    axes[1].set(title="item popularity (rank vs events)", xlabel="rank", ylabel="events")
    user_counts = events.groupby(C.USER_ID).size()
    axes[2].hist(user_counts.clip(upper=user_counts.quantile(0.99)), bins=30)
    axes[2].set(title="events per user (clipped at p99)", xlabel="events", ylabel="users")
    fig.tight_layout()
    fig  # noqa: B018 (marimo shows the last expression)
    return


@app.cell
def _(
    dataclasses,
    events,
    items,
    pipeline_config_from_dict,
    prepare_split,
    quick,
    registry,
    settings,
    training_plan,
    users,
):
    # The champion: the served version's configuration (else the shipped one), on the split
    # the training DAG would choose for these events; the variant changes LightFM only.
    plan, split_at = training_plan(events)
    served = registry.current_version(settings.models_dir)
    champion_config = plan
    if served is not None:
        _saved = registry.read_json(settings.models_dir, served, "config.json")
        champion_config = dataclasses.replace(
            pipeline_config_from_dict(_saved), split=plan.split, features=plan.features
        )
    if quick:  # small data in the tests: few epochs, small grids
        champion_config = dataclasses.replace(
            champion_config,
            lightfm=dataclasses.replace(champion_config.lightfm, epochs=6, num_threads=1),
            als=dataclasses.replace(champion_config.als, factors=16, iterations=4),
            blend=dataclasses.replace(
                champion_config.blend,
                weight_grid=(0.0, 0.5, 0.9),
                self_weight_grid=(0.0, 4.0),
                als_weight_grid=(0.0, 0.3),
            ),
        )
    variant_config = dataclasses.replace(
        champion_config,
        lightfm=dataclasses.replace(
            champion_config.lightfm,
            no_components=max(8, champion_config.lightfm.no_components // 2),
            loss="bpr",
        ),
    )
    split = prepare_split(
        events, items, users, champion_config.features, champion_config.split, split_at
    )
    return champion_config, served, split, split_at, variant_config


@app.cell
def _(
    C,
    champion_config,
    fit_and_evaluate,
    load_contract,
    mo,
    pd,
    settings,
    split,
    variant_config,
):
    # The same evaluation and definition of done for both (paired bootstrap intervals)
    contract = load_contract(settings.definition_of_done)
    quiet = lambda _msg: None  # noqa: E731
    champion = fit_and_evaluate(split, champion_config, contract, quiet)
    variant = fit_and_evaluate(split, variant_config, contract, quiet)
    cand = champion_config.candidate
    allseg = lambda t: t[t[C.SEGMENT] == C.SEGMENT_ALL].set_index(C.MODEL)  # noqa: E731
    cols = ["ndcg@10", "hit_rate@10", "recall@20", "coverage@20"]
    comparison = pd.DataFrame(
        {
            "champion": allseg(champion.metrics).loc[cand, cols],
            "variant": allseg(variant.metrics).loc[cand, cols],
        }
    )
    comparison["variant / champion"] = comparison["variant"] / comparison["champion"]
    mo.vstack(
        [
            mo.md(f"## Champion vs variant ({cand}, all items)"),
            mo.ui.table(comparison.reset_index(names="metric").round(4)),
            mo.md(
                f"```\nchampion {champion.dod.summary()}\n\nvariant {variant.dod.summary()}\n```"
            ),
        ]
    )
    return cand, champion, comparison, variant


@app.cell
def _(C, cand, champion, plt, variant):
    figure, ax = plt.subplots(figsize=(9, 3.5))
    _rows = []
    for _name, _fitted in (("champion", champion), ("variant", variant)):
        _t = _fitted.metrics[_fitted.metrics[C.SEGMENT] == C.SEGMENT_ALL]
        _rows.append(_t.set_index(C.MODEL)["ndcg@10"].rename(_name))
    import pandas as _pd

    _both = _pd.concat(_rows, axis=1)
    _both.plot.bar(ax=ax, title=f"nDCG@10 by model (the candidate is {cand})", rot=0)
    figure.tight_layout()
    figure  # noqa: B018 (marimo shows the last expression)
    return


@app.cell
def _(
    C,
    card,
    champion,
    comparison,
    config_to_dict,
    json,
    pd,
    served,
    source_dir,
    source_kind,
    split_at,
    tracking,
    variant,
    variant_config,
):
    # Log the variant's run (its table, the champion's candidate row beside it as
    # `champion:<model>`, the definition of done, the model's arrays) to MLflow
    _champ_rows = champion.metrics[champion.metrics[C.MODEL] == variant.dod.candidate].assign(
        **{C.MODEL: "champion:" + variant.dod.candidate}
    )
    run_id = tracking.log_evaluation(
        experiment=tracking.RESEARCH,
        name=f"variant lightfm {variant_config.lightfm.loss} "
        f"{variant_config.lightfm.no_components} components",
        config=config_to_dict(variant_config),
        table=pd.concat([variant.metrics, _champ_rows], ignore_index=True),
        dod=variant.dod.to_dict(),
        tags={
            "dataset": f"{source_kind}:{card.get('id', source_dir.name)}",
            "snapshot": source_dir.name,
            "compared_to": served or "shipped configuration",
            "notebook": "notebooks/research.py",
        },
        report_text=comparison.to_string() + "\n\n" + variant.dod.summary(),
        model=variant.models[variant.dod.candidate],
        extra_params={"split_at": str(split_at)},
    )
    result = {
        "run_id": run_id,
        "source": source_kind,
        "champion": comparison["champion"].round(6).to_dict(),
        "variant": comparison["variant"].round(6).to_dict(),
        "variant_dod_passed": bool(variant.dod.passed),
    }
    print(json.dumps(result), flush=True)
    return (result,)


if __name__ == "__main__":
    app.run()
