"""Clickstream simulator of the Trasos fashion shop (DE-owned).

A generative model, vectorised with numpy, deterministic for a seed: the same
:class:`SimulatorConfig` gives the same bytes in every output file.

Model
-----
* **Catalog**: items with department, category, product type, colour, brand, style,
  price, collection and launch date. New collections drop during the run (about one per
  10 days, ``cold_item_share`` of the items; runs of one day have no drop).
* **People**: registered customers (``existing_customer_share`` of ``visitors``, some on
  two devices) and new visitors arriving every day; a band-controlled share of new
  visitors converts (sign-up ``login`` + first purchase). Visits follow a renewal process
  with gamma gaps (customers: mean 1.5-60 days; visitors: shorter, and they stop after a
  geometric number of visits), at most one visit a person a day, hourly and weekday
  seasonality. Bots (``bot_share``) crawl most days with long, fast sessions and crawler
  user agents.
* **Taste**: ``n_segments`` planted segments, each with weights over categories, colours,
  brands, styles and a price band; a person mixes two segments. Items come in outfits
  (department, collection and style) that are viewed and bought together.
* **Behaviour**: a visit is a landing page, product blocks (navigation by category page,
  search, list, recommendation widget or "complete the look" outfit link; list scroll,
  click, product view, scroll, wishlist, cart), and a cart/checkout suffix with removals
  and one ``purchase`` line per item of the order. ``login`` sets ``user_id`` on itself and
  on the later events of the session. Gaps inside a visit are seconds (at most 20
  minutes); a person's visits are more than 30 minutes apart.

Output (under the data directory, ``landing/``)
-----------------------------------------------
* ``events/date=YYYY-MM-DD/hour=HH/batch-NNNN.jsonl.gz``: one JSON event per line,
  bucketed by the hour of ``event_time``; one batch per ``batch_minutes`` window (default
  30: two a hour; batch numbers count from 0001 within each hour). A file appears
  atomically (written as a hidden ``.name.tmp``, then renamed). Event fields: ``event_id`` (UUID4 text),
  ``event_time`` (``YYYY-MM-DDTHH:MM:SS.ffffffZ``), ``event_type``, ``anonymous_id``,
  ``context`` {platform, country, user_agent}, ``user_id`` (null until login),
  ``item_id`` (product events only), ``page`` (``/``, ``/c/<department>/<category>``,
  ``/p/<item_id>``, ``/search``, ``/cart``, ``/checkout``, ``/login``) and ``properties``
  (only the keys that apply: scroll_depth_pct, list_position, search_query, order_id,
  quantity, price, recommendation_id; ``method`` on logins).
* ``catalog/snapshot_date=YYYY-MM-DD/items.jsonl.gz`` (``contracts.ITEM_COLUMNS``) and
  ``customers/snapshot_date=YYYY-MM-DD/customers.jsonl.gz`` (``contracts.CUSTOMER_COLUMNS``):
  the state at the end of the first day, of every collection drop day and of the last day.
* ``_simulator/``: ``summary.json``, ``faults.jsonl`` and ``ground_truth/`` (items, outfits,
  people, sessions as Parquet; segment weights and per-epoch item probabilities in
  ``segments.npz``; ``truth.json``). Ingestion ignores paths starting with ``_``.
  ``sessions.parquet`` has each visit's device, start and end: an event belongs to the
  visit of its ``anonymous_id`` whose [start_at, end_at] holds its ``event_time``.

Speed: every step is array code (loops only over chunks of ``chunk_days`` days, the view
index inside a visit, catalog epochs and groups of files); JSON lines are assembled
column-wise with Arrow compute and gzipped by a thread pool while the next chunk of days
is generated (see :mod:`include.simulator.writer`). Faults are the exception: each
planned fault edits its line in Python (about ``fault_rate`` of the lines).

Faults (off unless ``fault_rate > 0``)
--------------------------------------
Each of the nine line faults is injected ``max(1, round(fault_rate * events / 9))`` times
(``late`` at least twice, about half of them too late); ``empty_file`` and ``crlf`` hit
``max(1, round(fault_rate * files))`` files (counts are handed out chunk by chunk, see
``layout.FaultQuota``). A line carries at most one fault; moved and re-sent lines go to a
later batch of the same chunk (``chunk_days``). Every fault is one record of
``_simulator/faults.jsonl``::

    {"file": "events/date=.../hour=../batch-0001.jsonl.gz", "line": 17 | null,
     "fault": "...", "expected_reason": "..." | null, "field": "..." | null,
     "event_id": "..." | null}

``line`` is 1-based (null for file faults); ``field`` is the JSON path of the field
(``properties.quantity`` for a nested one), as ingestion names it in its reason codes.
``expected_reason`` is the reason code ingestion must give when it quarantines the line,
null when the line must load:

==================  ============================================  ==========================
fault               what the line looks like                      expected_reason
==================  ============================================  ==========================
truncated           an event line cut after 60+ bytes (newline    invalid_json
                    kept; a proper prefix of an object)
garbage             an extra non-JSON text line                   invalid_json
invalid_utf8        an event line with invalid UTF-8 bytes in     invalid_utf8
                    the ``page`` value (otherwise valid JSON)
wrong_type          ``event_time`` as a JSON number (epoch s), or bad_type:<field>
                    on purchases ``properties.quantity`` as the   (field = event_time or
                    string ``"two"``                              properties.quantity)
missing_field       one of event_id, event_time, event_type,      missing_field:<field>
                    anonymous_id removed (key absent)
unknown_event_type  ``event_type`` not in common.contracts.EVENT_TYPES   unknown_event_type
duplicate           an exact copy of a clean line, on the next    null (a duplicate)
                    line or in a later batch inside the window
late (in window)    an unchanged event moved to a later batch:    null (must load)
                    batch hour start - event_time <= window - 12h
late (too late)     event_time re-stamped to batch hour start -   too_late
                    (window + 12h .. window + 7 days)
future              event_time re-stamped to batch hour end +     future_event_time
                    (1 .. 3 days)
empty_file          an extra batch file holding zero lines (a     null
                    valid gzip stream of 0 bytes)
crlf                a whole file with ``\\r\\n`` line endings        null
==================  ============================================  ==========================

The rules ingestion applies, with ``batch hour start`` parsed from the file path
(``date=``/``hour=``) and ``window = late_window_days`` (``TRASOS_LATE_WINDOW_DAYS``,
default 3): a line is ``too_late`` when ``event_time < batch hour start - window`` and
``future_event_time`` when ``event_time > batch hour end + 1 hour`` (batch hour end =
batch hour start + 1 hour). Late and future faults stay at least 12 hours away from these
limits; clean lines always lie inside their batch hour.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from include.simulator.config import FAULT_KINDS, SimulationSummary, SimulatorConfig

__all__ = ["FAULT_KINDS", "SimulationSummary", "SimulatorConfig", "simulate"]

OWNED_DIRS: tuple[str, ...] = ("events", "catalog", "customers", "_simulator")


def simulate(
    config: SimulatorConfig,
    out_dir: Path | None = None,
    *,
    overwrite: bool = False,
    progress: bool = False,
) -> SimulationSummary:
    """Simulate ``config`` and write the landing zone under ``out_dir/landing``.

    Parameters
    ----------
    config
        The run; equal configs give byte-identical files.
    out_dir
        The data directory; ``None`` uses ``settings.get_settings().data_dir``.
    overwrite
        Replace an earlier simulator output (``landing/events``, ``catalog``,
        ``customers``, ``_simulator``); without it an existing output is an error.
    progress
        Show a tqdm progress bar on stderr.
    """
    from include.settings import get_settings
    from include.simulator import output

    settings = get_settings()
    data_dir = Path(out_dir) if out_dir is not None else settings.data_dir
    landing = data_dir / "landing"
    # An empty directory (made by `airflowctl init` or a run killed before its first file) is
    # not output: only directories holding files count.
    existing = [
        landing / d
        for d in OWNED_DIRS
        if (landing / d).is_dir() and any(p.is_file() for p in (landing / d).rglob("*"))
    ]
    if existing and not overwrite:
        raise FileExistsError(
            f"{landing} already holds simulator output ({', '.join(p.name for p in existing)});"
            " pass overwrite=True (CLI: --overwrite) or choose another --out"
        )
    for path in existing:
        shutil.rmtree(path)
    late_window = (
        config.late_window_days
        if config.late_window_days is not None
        else settings.late_window_days
    )
    t0 = time.perf_counter()
    summary = output.run(config, landing, late_window, progress=progress)
    elapsed = time.perf_counter() - t0
    return SimulationSummary(**{**summary.__dict__, "elapsed_s": round(elapsed, 3)})
