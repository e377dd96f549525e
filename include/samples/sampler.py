"""Samples on request: a reproducible, pseudonymised slice of the marts or the raw lake.

One request (:class:`SampleRequest`) gives one folder ``<TRASOS_DATA_DIR>/samples/<id>/``,
complete or absent (:func:`common.fs.atomic_dir`):

- ``<source>.parquet`` for every requested source;
- ``card.json`` and ``README.md``, the data card: schema with the dbt descriptions, row and
  unit counts, the sampling method, date range, privacy treatment, caveats, the owner.

Method (all in DuckDB SQL, parameters bound, never formatted in):

1. The population is the distinct units (``visitor`` or ``session``) of the *first* sampled
   source within the date range, each with its stratum (the alphabetically first value of the
   stratification column over the unit's rows; null is a stratum of its own).
2. Within each stratum, units are ranked by ``md5(seed || ':' || unit)`` and the first
   ``round(fraction x stratum size)`` are kept (``size``: fraction = size / population).
   Same seed and same data give the same units; a larger fraction keeps a superset.
3. Every sampled source keeps *all* its rows of the chosen units within the date range, so
   files join on visitor and session keys. Reference sources (items) are copied whole.

Privacy by default: identifier columns (:data:`ID_COLUMNS`) become salted keyed hashes
(:mod:`include.samples.pseudonym`, one salt per sample kept by DE outside the folder); free
text, URLs and user agents (:data:`DROPPED_COLUMNS`) are dropped. ``keep_raw_ids`` keeps the
ids (free text is dropped regardless) and only an admin may ask for it
(:mod:`include.samples.access`).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from common.fs import atomic_dir, atomic_write_text
from include.samples import pseudonym
from include.samples.access import require_admin
from include.settings import get_settings

log = logging.getLogger(__name__)

OWNER = {"role": "DE", "team": "data-engineering", "contact": "ask DE for changes or re-runs"}
UNITS = ("visitor", "session")
RAW, MART, REFERENCE = "raw", "mart", "reference"


@dataclass(frozen=True)
class Source:
    """One source a sample may take (the allow-list: nothing else reaches the SQL)."""

    name: str
    kind: str  # raw | mart | reference
    date_column: str | None = None
    visitor_column: str | None = None
    session_column: str | None = None
    grain: str = ""


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "raw_events",
            RAW,
            "event_date",
            "anonymous_id",
            None,
            "one row per raw lake event (bots included, flagged is_bot); visitor = device id",
        ),
        Source("fct_events", MART, "event_at", "visitor_id", "session_id", "one row per event"),
        Source(
            "fct_sessions",
            MART,
            "session_date",
            "visitor_id",
            "session_id",
            "one row per session",
        ),
        Source(
            "ml_interactions",
            MART,
            "last_interaction_at",
            "user_id",
            None,
            "one row per user and item (rows whose last interaction falls in the range)",
        ),
        Source(
            "ml_user_features",
            MART,
            "last_seen_at",
            "user_id",
            None,
            "one row per visitor (visitors last seen in the range)",
        ),
        Source("ml_item_features", REFERENCE, grain="one row per item, copied whole"),
        Source("dim_items", REFERENCE, grain="one row per item, copied whole"),
    )
}

#: Identifier columns: pseudonymised unless raw ids are kept (admins only).
ID_COLUMNS: frozenset[str] = frozenset(
    {"visitor_id", "user_id", "anonymous_id", "stitched_user_id", "session_id", "order_id"}
)
#: Columns never in a sample, with the reason the data card gives.
DROPPED_COLUMNS: dict[str, str] = {
    "user_agent": "user agent: fingerprints a device",
    "search_query": "free text typed by the visitor",
    "properties": "free text: the raw properties JSON of the event",
    "page": "URL: may carry search terms or e-mail links",
    "landing_page": "URL: may carry search terms or e-mail links",
    "source_file": "ingestion plumbing, not data",
    "source_line": "ingestion plumbing, not data",
}
_SAMPLE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class SampleError(ValueError):
    """A request that cannot be served; the message says what to change."""


@dataclass(frozen=True)
class SampleRequest:
    """What DS or DA asked for.

    Attributes
    ----------
    sources
        Names of :data:`SOURCES`; the first non-reference one defines the population.
    date_from, date_to
        Inclusive date range on each source's date column; None = the primary's whole range.
    unit
        ``visitor`` or ``session``: what is sampled (all rows of a chosen unit are kept).
    fraction, size
        Exactly one: a share of the population's units in (0, 1], or a number of units.
    stratify_by
        Optional column of the primary source (e.g. ``country``, ``platform``): each value
        keeps its share of units.
    seed
        Same seed, same data: same units.
    keep_raw_ids
        Keep identifier columns as they are (admins only: ``requested_by`` must be one).
    """

    sources: tuple[str, ...]
    date_from: date | None = None
    date_to: date | None = None
    unit: str = "visitor"
    fraction: float | None = None
    size: int | None = None
    stratify_by: str | None = None
    seed: int = 0
    keep_raw_ids: bool = False
    requested_by: str | None = None
    sample_id: str | None = None
    purpose: str = ""

    def primary(self) -> Source:
        return next(SOURCES[s] for s in self.sources if SOURCES[s].kind != REFERENCE)

    def validate(self) -> None:
        """Raise :class:`SampleError` naming the wrong input and what to do."""
        if not self.sources:
            raise SampleError("no sources: name one or more of " + ", ".join(SOURCES))
        unknown = [s for s in self.sources if s not in SOURCES]
        if unknown:
            raise SampleError(f"unknown sources {unknown}: choose from {', '.join(SOURCES)}")
        if len(set(self.sources)) != len(self.sources):
            raise SampleError(f"sources listed twice: {list(self.sources)}")
        kinds = {SOURCES[s].kind for s in self.sources}
        if kinds <= {REFERENCE}:
            raise SampleError(
                "only reference sources (items) given: add a sampled source, e.g. fct_sessions"
            )
        if RAW in kinds and MART in kinds:
            raise SampleError(
                "raw_events is sampled on its own (its visitors are device ids, the marts' are "
                "stitched visitors): ask for it in a separate sample"
            )
        if self.unit not in UNITS:
            raise SampleError(f"unit {self.unit!r}: use one of {', '.join(UNITS)}")
        column = "session_column" if self.unit == "session" else "visitor_column"
        no_unit = [
            s
            for s in self.sources
            if SOURCES[s].kind != REFERENCE and not getattr(SOURCES[s], column)
        ]
        if no_unit:
            raise SampleError(
                f"{no_unit} have no {self.unit} column: sample by visitor, or use "
                "fct_events/fct_sessions for sessions"
            )
        if (self.fraction is None) == (self.size is None):
            raise SampleError("give exactly one of fraction (0 < f <= 1) or size (units >= 1)")
        if self.fraction is not None and not 0 < float(self.fraction) <= 1:
            raise SampleError(f"fraction {self.fraction} must be in (0, 1]")
        if self.size is not None and (int(self.size) != self.size or self.size < 1):
            raise SampleError(f"size {self.size} must be a whole number of units >= 1")
        if int(self.seed) != self.seed or self.seed < 0:
            raise SampleError(f"seed {self.seed} must be a whole number >= 0")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise SampleError(f"date_from {self.date_from} is after date_to {self.date_to}")
        if self.sample_id is not None and not _SAMPLE_ID.match(self.sample_id):
            raise SampleError(
                f"sample id {self.sample_id!r}: lowercase letters, digits, '_' or '-', "
                "at most 64 characters"
            )
        if self.keep_raw_ids:
            require_admin(self.requested_by)


@dataclass
class SampleFile:
    """One written file, with what the sample gate needs to check it."""

    source: str
    path: Path
    rows: int
    units: int | None
    columns: list[str]
    id_columns: list[str]
    raw_ids: set[str] = field(default_factory=set, repr=False)  # never written anywhere
    is_primary: bool = False


@dataclass
class SampleResult:
    sample_id: str
    path: Path
    card: dict[str, Any]
    files: list[SampleFile]


def samples_dir() -> Path:
    """``<TRASOS_DATA_DIR>/samples``."""
    return get_settings().data_dir / "samples"


def new_sample_id() -> str:
    return datetime.now(UTC).strftime("s%Y%m%dt%H%M%S") + "-" + secrets.token_hex(3)


# --- dbt descriptions ------------------------------------------------------------------------
def dbt_descriptions() -> dict[str, dict[str, Any]]:
    """``{model or lake table: {"description", "columns": {name: description}}}`` from the
    dbt YAML (models and the lake sources; raw_events is the ``lake.events`` source)."""
    import yaml

    def clean(text: Any) -> str:
        return " ".join(str(text or "").split())

    out: dict[str, dict[str, Any]] = {}
    for path in sorted((get_settings().dbt_project_dir / "models").rglob("_*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        entries = list(document.get("models", []))
        for source in document.get("sources", []):
            for table in source.get("tables", []):
                entries.append({**table, "name": f"raw_{table['name']}"})
        for entry in entries:
            out[entry["name"]] = {
                "description": clean(entry.get("description")),
                "columns": {
                    c["name"]: clean(c.get("description")) for c in entry.get("columns", [])
                },
            }
    return out


# --- the sample ------------------------------------------------------------------------------
def _relation(con, source: Source) -> str:
    """The SQL name to select from (a view over the lake for raw_events)."""
    if source.kind == RAW:
        glob = str(get_settings().lake_dir / "events" / "*" / "*.parquet")
        con.read_parquet(glob, hive_partitioning=True).create_view("sample_raw_events")
        return "sample_raw_events"
    present = {
        row[0]
        for row in con.execute(
            "select table_name from information_schema.tables where table_schema = 'main'"
        ).fetchall()
    }
    if source.name not in present:
        raise SampleError(
            f"{source.name} is not in the warehouse {get_settings().warehouse_path}: run the "
            "events_transform DAG first (`make run`)"
        )
    return pseudonym.quote_identifier(source.name)


def _columns(con, relation: str) -> list[tuple[str, str]]:
    rows = con.execute(f"describe select * from {relation}").fetchall()
    return [(r[0], str(r[1])) for r in rows]


def take_sample(
    request: SampleRequest,
    *,
    check: Callable[[Path, SampleResult], None] | None = None,
) -> SampleResult:
    """Write the sample of ``request``; returns its folder, data card and files.

    ``check(staging_dir, result)`` runs on the finished files before the folder appears (the
    task layer passes the GX sample gate): when it raises, nothing is published and no salt
    is kept.
    """
    request.validate()
    sample_id = request.sample_id or new_sample_id()
    final = samples_dir() / sample_id
    if final.exists():
        raise SampleError(f"sample {sample_id!r} exists already ({final}): choose another id")
    kinds = {SOURCES[s].kind for s in request.sources}
    if kinds == {RAW}:
        import duckdb

        con = duckdb.connect()
        try:
            return _write(con, request, sample_id, final, check)
        finally:
            con.close()
    from include.warehouse import read_marts

    with read_marts() as con:
        return _write(con, request, sample_id, final, check)


def _write(con, request, sample_id, final, check) -> SampleResult:
    from include.reporting.export import sql_literal

    primary = request.primary()
    unit_attr = "session_column" if request.unit == "session" else "visitor_column"
    relations = {name: _relation(con, SOURCES[name]) for name in request.sources}
    schemas = {name: _columns(con, rel) for name, rel in relations.items()}
    primary_rel = relations[primary.name]
    primary_cols = [c for c, _ in schemas[primary.name]]

    q = pseudonym.quote_identifier
    unit_col = q(getattr(primary, unit_attr))
    primary_date = f"cast({q(primary.date_column)} as date)"

    date_from, date_to = request.date_from, request.date_to
    if date_from is None or date_to is None:
        lo, hi = con.execute(
            f"select min({primary_date}), max({primary_date}) from {primary_rel}"
        ).fetchall()[0]
        if lo is None:
            raise SampleError(f"{primary.name} is empty: nothing to sample")
        date_from, date_to = date_from or lo, date_to or hi

    if request.stratify_by is not None:
        if request.stratify_by not in primary_cols:
            raise SampleError(
                f"stratify_by {request.stratify_by!r} is not a column of {primary.name}: "
                f"choose one of {sorted(c for c in primary_cols if c not in ID_COLUMNS)}"
            )
        if request.stratify_by in ID_COLUMNS or request.stratify_by in DROPPED_COLUMNS:
            raise SampleError(f"stratify_by {request.stratify_by!r} is an id or dropped column")
        stratum = f"min(cast({q(request.stratify_by)} as varchar))"
    else:
        stratum = "cast(null as varchar)"

    # 1. population and strata
    con.execute(
        f"""create or replace temp table sample_population as
        select cast({unit_col} as varchar) as unit, {stratum} as stratum
        from {primary_rel}
        where {unit_col} is not null and {primary_date} between ? and ?
        group by 1""",
        [date_from, date_to],
    )
    n_population = con.execute("select count(*) from sample_population").fetchall()[0][0]
    if not n_population:
        raise SampleError(
            f"no {request.unit}s in {primary.name} between {date_from} and {date_to}: "
            "widen the date range"
        )
    fraction = (
        float(request.fraction)
        if request.fraction is not None
        else min(1.0, int(request.size) / n_population)
    )
    # 2. rank by hash within each stratum, keep round(fraction x stratum size)
    con.execute(
        """create or replace temp table sample_units as
        select unit, stratum from (
            select
                unit,
                stratum,
                row_number() over (
                    partition by stratum order by md5(cast(? as varchar) || ':' || unit), unit
                ) as position,
                count(*) over (partition by stratum) as stratum_size
            from sample_population
        ) where position <= round(? * stratum_size)""",
        [str(int(request.seed)), fraction],
    )
    n_units = con.execute("select count(*) from sample_units").fetchall()[0][0]
    strata = {
        (s if s is not None else "(null)"): {"population": int(p), "sampled": int(k)}
        for s, p, k in con.execute(
            """select p.stratum, count(*), count(u.unit) from sample_population p
            left join sample_units u using (unit) group by 1 order by 1 nulls last"""
        ).fetchall()
    }

    salt = None if request.keep_raw_ids else pseudonym.generate_salt()
    descriptions = dbt_descriptions()
    files: list[SampleFile] = []
    card_files: list[dict[str, Any]] = []
    with atomic_dir(final, replace=False) as staging:
        for name in request.sources:
            source, rel = SOURCES[name], relations[name]
            select: list[str] = []
            params: list[Any] = []
            kept, dropped, id_cols = [], [], []
            for column, dtype in schemas[name]:
                if column in DROPPED_COLUMNS:
                    dropped.append({"name": column, "reason": DROPPED_COLUMNS[column]})
                    continue
                if column in ID_COLUMNS:
                    id_cols.append(column)
                    if salt is not None:
                        select.append(f"{pseudonym.key_sql(q(column))} as {q(column)}")
                        params.append(salt)
                        kept.append((column, "VARCHAR", "pseudonymised"))
                        continue
                select.append(q(column))
                kept.append((column, dtype, "kept"))
            where, where_params = "true", []
            if source.kind != REFERENCE:
                where = (
                    f"cast({q(source.date_column)} as date) between ? and ? and "
                    f"cast({q(getattr(source, unit_attr))} as varchar) in "
                    "(select unit from sample_units)"
                )
                where_params = [date_from, date_to]
            out = staging / f"{name}.parquet"
            con.execute(
                f"copy (select {', '.join(select)} from {rel} where {where}) "
                f"to {sql_literal(out)} (format parquet)",
                [*params, *where_params],
            )
            rows = con.execute(f"select count(*) from read_parquet({sql_literal(out)})").fetchall()[
                0
            ][0]
            units = None
            raw_ids: set[str] = set()
            if source.kind != REFERENCE:
                unit_name = getattr(source, unit_attr)
                units = con.execute(
                    f"select count(distinct {q(unit_name)}) from read_parquet({sql_literal(out)})"
                ).fetchall()[0][0]
                if id_cols:
                    union = " union ".join(
                        f"select cast({q(c)} as varchar) from {rel} where {where}" for c in id_cols
                    )
                    raw_ids = {
                        r[0]
                        for r in con.execute(union, where_params * len(id_cols)).fetchall()
                        if r[0] is not None
                    }
            model_docs = descriptions.get(name, {"description": "", "columns": {}})
            files.append(
                SampleFile(
                    name,
                    final / out.name,
                    int(rows),
                    units,
                    [c for c, _, _ in kept],
                    id_cols,
                    raw_ids,
                    is_primary=name == primary.name,
                )
            )
            card_files.append(
                {
                    "file": out.name,
                    "source": name,
                    "kind": source.kind,
                    "grain": source.grain,
                    "description": model_docs["description"],
                    "date_column": source.date_column,
                    "rows": int(rows),
                    f"{request.unit}s": units,
                    "columns": [
                        {
                            "name": c,
                            "type": t,
                            "treatment": how,
                            "description": model_docs["columns"].get(c, "")
                            + (
                                " Pseudonymised: salted keyed hash, the same key across this "
                                "sample's files only."
                                if how == "pseudonymised"
                                else ""
                            ),
                        }
                        for c, t, how in kept
                    ],
                    "dropped_columns": dropped,
                }
            )
        card = _card(
            request,
            sample_id,
            primary,
            date_from,
            date_to,
            fraction,
            n_population,
            n_units,
            strata,
            card_files,
            salt is not None,
        )
        atomic_write_text(staging / "card.json", json.dumps(card, indent=2, default=str) + "\n")
        atomic_write_text(staging / "README.md", render_card(card))
        result = SampleResult(sample_id, final, card, files)
        if check is not None:
            staged = [
                SampleFile(**{**asdict(f), "path": staging / f.path.name, "raw_ids": f.raw_ids})
                for f in files
            ]
            check(staging, SampleResult(sample_id, staging, card, staged))
        if salt is not None:
            try:
                pseudonym.store_salt(sample_id, salt)
            except FileExistsError as exc:
                raise SampleError(f"{exc}: choose another sample id") from exc
    log.info(
        "sample %s: %d of %d %ss (%.4f), %s -> %s",
        sample_id,
        n_units,
        n_population,
        request.unit,
        n_units / n_population,
        ", ".join(f"{f.source} {f.rows} rows" for f in files),
        final,
    )
    return result


def _card(
    request,
    sample_id,
    primary,
    date_from,
    date_to,
    fraction,
    n_population,
    n_units,
    strata,
    files,
    pseudonymised,
) -> dict[str, Any]:
    how = (
        f"{request.fraction:g} of the units"
        if request.fraction is not None
        else f"{request.size} units (fraction {fraction:.6g} of the population)"
    )
    strat = (
        f", stratified by {request.stratify_by} (each value keeps its share, rounded)"
        if request.stratify_by
        else ""
    )
    caveats = [
        f"A sampled {request.unit} brings all of its rows inside the date range and none outside "
        "it: histories are cut at the range's edges.",
        f"The population is the {request.unit}s of {primary.name} in the range; other sampled "
        "files keep only rows of those units.",
        "Counts and rates from a sample estimate the whole; rare events (purchases) have wide "
        "intervals on small samples.",
    ]
    if RAW in {SOURCES[s].kind for s in request.sources}:
        caveats.append(
            "raw_events: visitors are device ids (anonymous_id); bots are included "
            "and flagged is_bot; sessions are not derived yet (use fct_events)."
        )
    else:
        caveats.append(
            "Marts: visitors are stitched (customer id, else device id); bots are excluded."
        )
    if "ml_interactions" in request.sources:
        caveats.append(
            "ml_interactions.decayed_score is decayed to the newest event of the "
            "whole warehouse, not of the sample."
        )
    if any(SOURCES[s].kind == REFERENCE for s in request.sources):
        caveats.append("Item tables are copied whole (not sampled).")
    if pseudonymised:
        caveats.append(
            "Keys are per sample: they do not join to another sample or to "
            "production ids. Ask DE when a key must be traced back."
        )
    else:
        caveats.append(
            f"RAW IDS KEPT at the request of admin {request.requested_by!r}: handle "
            "as personal data, delete when done."
        )
    return {
        "sample_id": sample_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "owner": OWNER,
        "requested_by": request.requested_by,
        "purpose": request.purpose,
        "request": {
            **{k: v for k, v in asdict(request).items() if k not in ("sample_id",)},
            "sources": list(request.sources),
        },
        "method": (
            f"Hash-based {request.unit} sample: {how}{strat}. Units of {primary.name} are ranked "
            f"by md5(seed || ':' || unit) within each stratum and the first round(fraction x "
            f"stratum size) kept; same seed and data give the same units (seed "
            f"{int(request.seed)})."
        ),
        "date_range": {"from": str(date_from), "to": str(date_to), "inclusive": True},
        "population": {
            "source": primary.name,
            "unit": request.unit,
            "units": int(n_population),
            "sampled_units": int(n_units),
            "sampled_fraction": n_units / n_population,
            "requested_fraction": fraction,
            "strata": strata,
        },
        "privacy": {
            "ids": "pseudonymised" if pseudonymised else "raw (admin request)",
            "id_columns": sorted(ID_COLUMNS),
            "key": f"substr(sha256(salt || id), 1, {pseudonym.KEY_LENGTH}), one salt per "
            "sample, kept by DE outside this folder"
            if pseudonymised
            else None,
            "dropped_columns": DROPPED_COLUMNS,
        },
        "files": files,
        "caveats": caveats,
    }


def render_card(card: dict[str, Any]) -> str:
    """The data card as Markdown (``README.md`` of the sample folder)."""
    pop = card["population"]
    lines = [
        f"# Sample `{card['sample_id']}`",
        "",
        f"Owner: {card['owner']['team']} ({card['owner']['role']}). "
        f"Requested by: {card['requested_by'] or 'unknown'}. Created {card['created_at']}.",
        *([f"Purpose: {card['purpose']}"] if card["purpose"] else []),
        "",
        f"**Method.** {card['method']}",
        "",
        f"**Date range.** {card['date_range']['from']} to {card['date_range']['to']} (inclusive).",
        "",
        f"**Units.** {pop['sampled_units']:,} of {pop['units']:,} {pop['unit']}s of "
        f"{pop['source']} ({pop['sampled_fraction']:.4%}).",
        "",
        f"**Privacy.** Ids: {card['privacy']['ids']}. Dropped: "
        + ", ".join(f"`{c}`" for c in card["privacy"]["dropped_columns"])
        + ".",
        "",
    ]
    for f in card["files"]:
        units = next((v for k, v in f.items() if k.endswith("s") and k[:-1] in UNITS), None)
        lines += [
            f"## `{f['file']}` ({f['rows']:,} rows"
            + (f", {units:,} {pop['unit']}s)" if units is not None else ")"),
            "",
            f"{f['grain']}. {f['description']}".strip(),
            "",
            "| column | type | treatment | description |",
            "|---|---|---|---|",
            *(
                f"| `{c['name']}` | {c['type']} | {c['treatment']} | "
                f"{c['description'].replace('|', '/')} |"
                for c in f["columns"]
            ),
            "",
        ]
    lines += ["## Caveats", "", *(f"- {c}" for c in card["caveats"]), ""]
    return "\n".join(lines)
