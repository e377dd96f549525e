"""YOOCHOOSE (RecSys Challenge 2015) 100k-click sample -> product_view events.

Source: ``yoochoose_rsc15_100k/`` (see SOURCE.md; challenge terms: non-commercial research):
``yoochoose-clicks-100k_train_full.tsv.gz`` (70,278 clicks, 2014-04-01 .. 04-07) and
``yoochoose-clicks-100k_test.tsv.gz`` (13,568 clicks, 2014-04-07 .. 04-08), tab-separated
SessionId, ItemId, Time (unix seconds with a fraction). Times are real UTC, milliseconds kept:
**no shift**. The tiny raw-format sample (``raw_sample_yoochoose-clicks.dat.csv.gz``) overlaps
this data and is not loaded.

=======================  ===============================================================
contract field           source
=======================  ===============================================================
event_id                 ``'yoochoose-train-<row>'`` / ``'yoochoose-test-<row>'`` (1-based
                         data row number within each file)
event_time               ``Time`` (unix seconds, fraction rounded to milliseconds)
event_type               ``product_view`` (a click on an item opens its page)
anonymous_id             ``SessionId`` (global ids: train and test sessions never share one)
user_id                  null (anonymous sessions)
item_id                  ``ItemId``
page                     ``/p/<ItemId>``
properties.source_split  ``train`` / ``test`` (the session-rec time split of the sample)
context                  all null
=======================  ===============================================================

Skipped with a reason: unparseable time, empty session or item id. No item data: the catalog
snapshot lists the ids the events name, attributes unknown
(``LoaderRun.write_catalog_of_event_items``).
"""

from __future__ import annotations

from pathlib import Path

from include.loaders.common import check_header, loader_run, numbered_csv, source_file

NAME = "yoochoose"
DESCRIPTION = "YOOCHOOSE RecSys 2015 sample, 83,846 item clicks in 21,210 sessions (2014-04)"
SOURCE_FOLDER = "yoochoose_rsc15_100k"
SOURCE_FILES = {
    "train": "yoochoose-clicks-100k_train_full.tsv.gz",
    "test": "yoochoose-clicks-100k_test.tsv.gz",
}
COLUMNS = ("SessionId", "ItemId", "Time")
MAPPING = {
    "event_id": "'yoochoose-<split>-' || data row number of the split's file",
    "event_time": "Time (unix s, ms precision, UTC)",
    "event_type": {"click": "product_view"},
    "anonymous_id": "SessionId",
    "user_id": None,
    "item_id": "ItemId",
    "properties": "source_split",
    "time_shift": "none",
}

EVENTS_SQL = """
select
    split || '-' || source_row as event_key,
    null::varchar as skip_reason,
    make_timestamp(round(try_cast(Time as decimal(18, 3)) * 1000)::bigint * 1000) as event_time,
    'product_view' as event_type,
    nullif(trim(SessionId), '') as anonymous_id,
    null::varchar as user_id,
    nullif(trim(ItemId), '') as item_id,
    '/p/' || nullif(trim(ItemId), '') as page,
    strip_nulls(json_object('source_split', split)) as properties,
    null::varchar as platform,
    null::varchar as country,
    null::varchar as user_agent,
    null::varchar as experiment_id,  -- public datasets ran no holdout experiment
    null::varchar as variant
from ({union})
order by split desc, source_row
"""


def load(data_dir: Path | None = None, source_dir: Path | None = None) -> dict[str, object]:
    """Write the YOOCHOOSE train+test clicks as events into ``data_dir``."""
    with loader_run(NAME, data_dir) as run:
        for split, file_name in SOURCE_FILES.items():
            path = source_file(source_dir, SOURCE_FOLDER, file_name)
            check_header(path, COLUMNS, sep="\t")
            run.register_source(f"src_{split}", path, numbered_csv(path, COLUMNS, sep="\t"))
        union = " union all ".join(f"select '{s}' as split, * from src_{s}" for s in SOURCE_FILES)
        run.write_events(EVENTS_SQL.format(union=union))
        run.write_catalog_of_event_items()
        return run.finish(mapping=MAPPING)
