"""RetailRocket raw view sample (10,080 views, 2015-05 .. 2015-09) -> product_view events.

Source: ``retailrocket/raw_sample_views.tsv.gz`` (see SOURCE.md; Kaggle lists the data as
CC BY-NC-SA 4.0). Tab-separated: timestamp (unix s), user_id (RetailRocket ``visitorid``),
item_id, session_id (derived by the sample's authors). Views only; times are real UTC: **no
shift**. ``sessions_processed.csv.gz`` is not loaded: it has remapped item ids, no visitor ids
and timestamps only on its test rows.

=======================  ===============================================================
contract field           source
=======================  ===============================================================
event_id                 ``'retailrocket-' || <1-based data row number>``
event_time               ``timestamp`` (unix seconds, UTC)
event_type               ``product_view`` (every row is a view)
anonymous_id             ``user_id`` (= visitorid: a cookie, not a login)
user_id                  null (RetailRocket visitors are anonymous)
item_id                  ``item_id``
page                     ``/p/<item_id>``
properties               ``source_session_id`` = ``session_id`` (informative only: sessions
                         are derived by the platform, never trusted from the source)
context                  all null
=======================  ===============================================================

Skipped with a reason: unparseable timestamp (``missing_event_time``), empty visitor or item id
(``missing_anonymous_id`` / ``missing_item_id``). The sample has no item properties: the catalog
snapshot lists the ids the events name, attributes unknown
(``LoaderRun.write_catalog_of_event_items``).
"""

from __future__ import annotations

from pathlib import Path

from include.loaders.common import check_header, loader_run, numbered_csv, source_file

NAME = "retailrocket"
DESCRIPTION = "RetailRocket raw sample, 10,080 product views of 2,496 visitors (2015)"
SOURCE_FOLDER = "retailrocket"
SOURCE_FILE = "raw_sample_views.tsv.gz"
COLUMNS = ("timestamp", "user_id", "item_id", "session_id")
MAPPING = {
    "event_id": "'retailrocket-' || data row number",
    "event_time": "timestamp (unix s, UTC)",
    "event_type": {"view": "product_view"},
    "anonymous_id": "user_id (visitorid)",
    "user_id": None,
    "item_id": "item_id",
    "properties": "source_session_id",
    "time_shift": "none",
}

EVENTS_SQL = """
select
    source_row::varchar as event_key,
    null::varchar as skip_reason,
    make_timestamp(try_cast(timestamp as bigint) * 1000000) as event_time,
    'product_view' as event_type,
    nullif(trim(user_id), '') as anonymous_id,
    null::varchar as user_id,
    nullif(trim(item_id), '') as item_id,
    '/p/' || nullif(trim(item_id), '') as page,
    strip_nulls(json_object('source_session_id', nullif(session_id, ''))) as properties,
    null::varchar as platform,
    null::varchar as country,
    null::varchar as user_agent,
    null::varchar as experiment_id,  -- public datasets ran no holdout experiment
    null::varchar as variant
from src
order by source_row
"""


def load(data_dir: Path | None = None, source_dir: Path | None = None) -> dict[str, object]:
    """Write the RetailRocket view sample as events into ``data_dir``; returns the summary."""
    path = source_file(source_dir, SOURCE_FOLDER, SOURCE_FILE)
    with loader_run(NAME, data_dir) as run:
        check_header(path, COLUMNS, sep="\t")
        run.register_source("src", path, numbered_csv(path, COLUMNS, sep="\t"))
        run.write_events(EVENTS_SQL)
        run.write_catalog_of_event_items()
        return run.finish(mapping=MAPPING)
