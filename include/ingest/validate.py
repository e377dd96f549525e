"""One load's validation in DuckDB: lines in, per-line reason or typed values, duplicates, bots,
per-file counts (:class:`~include.ingest.model.FileStats`) with the reconciliation check.

Temp tables of a load (on the run's connection): ``lines`` (file_id, line_no, line),
``files`` (one row per file), ``bad_lines`` (lines DuckDB never sees: invalid UTF-8),
``staged`` (:func:`~include.ingest.parse.staging_sql`), ``dups`` (valid lines that are
duplicates), ``rate_bots`` (anonymous ids over the per-minute rate), ``loaded`` (the rows
that load, made by the runner from :meth:`LoadValidator.loaded_sql`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from include.ingest.model import BOT_USER_AGENT_RE, FileStats, LoadItem, mtime_of
from include.ingest.parse import DatasetSpec, quarantine_line_sql, staging_sql


class LoadValidator:
    """Validates loads on one connection (``con``: a DuckDB connection or a wrapper of one)."""

    def __init__(self, con: Any, late_days: int, bot_max_events_per_minute: int):
        self.con = con
        self.late_days = late_days
        self.bot_max_events_per_minute = bot_max_events_per_minute

    def register_inputs(self, items: list[LoadItem]) -> None:
        batches: list[pa.RecordBatch] = []
        schema = pa.schema(
            [("file_id", pa.int32()), ("line_no", pa.int64()), ("line", pa.large_string())]
        )
        for file_id, it in enumerate(items):
            lines = it.content.lines
            n = len(lines)
            step = 1 << 16
            for start in range(0, n, step):
                stop = min(n, start + step)
                batches.append(
                    pa.RecordBatch.from_arrays(
                        [
                            pa.array(np.full(stop - start, file_id, dtype=np.int32)),
                            pa.array(np.arange(start + 1, stop + 1, dtype=np.int64)),
                            lines.slice(start, stop - start),
                        ],
                        schema=schema,
                    )
                )
        self.con.register("lines", pa.Table.from_batches(batches, schema=schema))
        files = pa.table(
            {
                "file_id": pa.array(range(len(items)), pa.int32()),
                "path": [it.file.path for it in items],
                "batch_start": pa.array([it.batch_start for it in items], pa.timestamp("us")),
                "batch_end": pa.array([it.batch_end for it in items], pa.timestamp("us")),
                "file_reason": pa.array([it.file_reason for it in items], pa.string()),
                "late_days": pa.array([self.late_days] * len(items), pa.int32()),
                "snapshot_date": pa.array([it.snapshot_date for it in items], pa.date32()),
            }
        )
        self.con.register("files", files)
        bad = [
            (
                file_id,
                b.line_no,
                it.file_reason or b.reason,
                b.raw_line,
                b.line_bytes,
            )
            for file_id, it in enumerate(items)
            for b in it.content.bad_lines
        ]
        self.con.register(
            "bad_lines",
            pa.table(
                {
                    "file_id": pa.array([b[0] for b in bad], pa.int32()),
                    "line_no": pa.array([b[1] for b in bad], pa.int64()),
                    "reason": pa.array([b[2] for b in bad], pa.string()),
                    "raw_line": pa.array([b[3] for b in bad], pa.string()),
                    "line_bytes": pa.array([b[4] for b in bad], pa.int64()),
                }
            ),
        )

    def validate(
        self, spec: DatasetSpec, items: list[LoadItem], load_id: str, now: datetime
    ) -> list[FileStats]:
        """Validate the load's lines into ``staged``, find duplicates and bots; per-file
        counts with the reconciliation check."""
        con = self.con
        self.register_inputs(items)
        con.execute(staging_sql(spec))
        # Duplicates: a narrow table of the valid lines that are not loaded. Ids compare by
        # their 128-bit MD5 (raw.event_ids keeps only that: 16 bytes an id).
        history = (
            """seen as (
                select v.file_id, v.line_no from valid v
                semi join raw.event_ids e on e.id_hash = v.h
            ),"""
            if spec.name == "events"
            else "seen as (select file_id, line_no from valid where false),"
        )
        con.execute(
            f"""
            create or replace temp table dups as
            with valid as (
                select file_id, line_no, md5_number(v_{spec.key}) as h
                from staged where reason is null and not is_blank
            ),
            {history}
            repeated as (select h from valid group by h having count(*) > 1),
            later as (
                select file_id, line_no from (
                    select v.file_id, v.line_no,
                           row_number() over (partition by v.h order by v.file_id, v.line_no) as rn
                    from valid v semi join repeated r on r.h = v.h
                ) where rn > 1
            )
            select * from seen union select * from later
            """
        )
        if spec.name == "events":
            con.execute(
                f"""
                create or replace temp table rate_bots as
                select distinct v_anonymous_id as anonymous_id
                from staged s anti join dups d on d.file_id = s.file_id and d.line_no = s.line_no
                where s.reason is null and not s.is_blank
                group by v_anonymous_id, date_trunc('minute', v_event_time)
                having count(*) > {int(self.bot_max_events_per_minute)}
                """
            )
        counts = {
            row[0]: row[1:]
            for row in con.execute(
                """
                select file_id, count(*), count(*) filter (where is_blank),
                       count(*) filter (where reason is not null),
                       count(*) filter (where not is_blank and reason is null)
                from staged group by file_id
                """
            ).fetchall()
        }
        dup_counts = dict(
            con.execute("select file_id, count(*) from dups group by file_id").fetchall()
        )
        stats: list[FileStats] = []
        for file_id, it in enumerate(items):
            n_rows, blank_sql, quarantined_sql, candidates = counts.get(file_id, (0, 0, 0, 0))
            duplicates = dup_counts.get(file_id, 0)
            c = it.content
            blank = blank_sql - c.blanked  # bad lines were blanked for DuckDB
            st = FileStats(
                path=it.file.path,
                dataset=it.file.dataset,
                content_hash=c.content_hash,
                size_bytes=it.file.size,
                file_mtime=mtime_of(it.file.mtime_ns),
                first_seen_at=it.first_seen_at,
                status="loaded",
                lines_in=c.lines_total - blank,
                blank_lines=blank,
                loaded=candidates - duplicates,
                quarantined=quarantined_sql + len(c.bad_lines),
                duplicates=duplicates,
                batch_start=it.batch_start,
                load_id=load_id,
                error=c.problem,
            )
            problems = []
            if n_rows != c.n_lines:
                problems.append(f"DuckDB saw {n_rows} lines, the file has {c.n_lines}")
            if not st.reconciles():
                problems.append(
                    f"lines_in {st.lines_in} != loaded {st.loaded} + quarantined "
                    f"{st.quarantined} + duplicates {st.duplicates}"
                )
            if problems:
                st.status = "failed"
                st.error = "; ".join(problems)
            elif c.file_reason:
                st.status = "unreadable"
            elif it.changed:
                st.status = "content_changed"
            stats.append(st)
        return stats

    def loaded_sql(self, spec: DatasetSpec, now: datetime, keep: str = "true") -> str:
        """SELECT of the rows that load (lake columns + file_id, late, is_bot)."""
        received = f"TIMESTAMP '{now.isoformat(sep=' ')}'"
        exprs: list[str] = []
        fields = {f.column for f in spec.fields}
        bot = (
            f"(regexp_matches(coalesce(c.v_user_agent, ''), '{BOT_USER_AGENT_RE}') "
            "or c.v_anonymous_id in (select anonymous_id from rate_bots))"
            if spec.name == "events"
            else "false"
        )
        for name, typ in spec.lake_columns:
            if name == "received_at":
                expr = received
            elif name == "source_file":
                expr = "f.path"
            elif name == "source_line":
                expr = "c.line_no"
            elif name == "event_date":
                expr = "c.v_event_time::DATE"
            elif name == "snapshot_date":
                expr = "f.snapshot_date"
            elif name == "is_bot":
                expr = bot
            elif name in fields:
                expr = f"c.v_{name}"
            else:
                raise ValueError(f"{spec.name}: no source for lake column {name!r}")
            exprs.append(f"cast({expr} as {typ}) as {name}")
        late = "c.v_event_time < f.batch_start" if spec.name == "events" else "false"
        extra = "" if spec.name == "events" else f", {bot} as is_bot"
        return f"""
            select c.file_id, {late} as late{extra}, {", ".join(exprs)}
            from staged c
            join files f on f.file_id = c.file_id
            anti join dups d on d.file_id = c.file_id and d.line_no = c.line_no
            where c.reason is null and not c.is_blank and {keep}
        """

    # writing ------------------------------------------------------------------------------

    def quarantine_sql(
        self, spec: DatasetSpec, load_id: str, now: datetime, keep: Any
    ) -> tuple[str, str]:
        """SELECT of the load's quarantine rows (QUARANTINE_COLUMNS), and the SELECT of their
        number (counted without the join to the lines, which only supplies the text).
        ``keep(alias)`` is the SQL condition that leaves failed files out."""
        quarantined_at = f"TIMESTAMP '{now.isoformat(sep=' ')}'"
        event_id = "s.v_event_id" if spec.name == "events" else "null::VARCHAR"
        raw_line, line_bytes = quarantine_line_sql("l.line")
        select = f"""
            select '{spec.name}' as dataset, f.path as source_file, s.line_no as source_line,
                   s.reason, {event_id} as event_id, {raw_line} as raw_line,
                   {line_bytes} as line_bytes, '{load_id}' as load_id,
                   {quarantined_at} as quarantined_at
            from staged s join files f on f.file_id = s.file_id
            join lines l on l.file_id = s.file_id and l.line_no = s.line_no
            where s.reason is not null and {keep("s.")}
            union all
            select '{spec.name}', f.path, b.line_no, b.reason, null, b.raw_line, b.line_bytes,
                   '{load_id}', {quarantined_at}
            from bad_lines b join files f on f.file_id = b.file_id
            where {keep("b.")}
        """
        count = (
            f"select (select count(*) from staged s where s.reason is not null and {keep('s.')})"
            f" + (select count(*) from bad_lines b where {keep('b.')})"
        )
        return select, count

    def reasons(self, keep: str) -> list[tuple[str, int]]:
        """(reason, lines) of the load, failed files left out."""
        return self.con.execute(
            f"""select reason, count(*) from (
                  select reason from staged where reason is not null and {keep}
                  union all select reason from bad_lines where {keep})
                group by reason"""
        ).fetchall()
