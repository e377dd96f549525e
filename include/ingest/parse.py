"""Validation SQL: every landing line becomes typed columns or one quarantine reason.

The SQL is generated from field specs, so a contract change is one edit. One pass over the
lines does, per line:

1. ``json_valid`` (blank lines are recognised only among the invalid ones, so the common
   case costs nothing extra);
2. one ``json_transform`` of the whole line into a struct: leaves whose contract type is a
   JSON string (VARCHAR, TIMESTAMP, DATE) come back as VARCHAR, unescaped; the others as
   short JSON texts whose first character gives the JSON type (``{`` object, digit or ``-``
   number, ...) without parsing the line again. A VARCHAR leaf that was a number, boolean,
   object or array comes back as its JSON text, which is valid JSON: only such values (an id
   of digits, say; a UUID or a word fails ``json_valid`` at its first characters) are asked
   their type in the line. Nested objects (``properties``) whose text is kept get one more
   transform of their own short text;
3. casts to the contract types (a value of the wrong JSON type casts to NULL), then one
   ``CASE`` that names the first rule a line breaks, in a fixed order: invalid JSON, missing
   required fields, wrong types (reasons name the field by its JSON path:
   ``bad_type:properties.quantity``), dataset rules (unknown event type, item_id of product
   events, future and too-late event times).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from common.contracts import EVENT_TYPES, PRODUCT_EVENT_TYPES
from common.experiment import VARIANTS
from include.contracts import (
    CONTEXT_KEYS,
    CUSTOMER_LAKE_COLUMNS,
    ITEM_LAKE_COLUMNS,
    PROPERTY_KEYS,
    RAW_EVENT_COLUMNS,
    RAW_LINE_MAX_CHARS,
)

OBJECT = "OBJECT"  # a JSON object kept as JSON text


@dataclass(frozen=True)
class Field:
    """One JSON leaf (or object) of a landing line and the column it becomes."""

    column: str  # output column name (unique within a dataset)
    path: tuple[str, ...]  # JSON keys from the root, at most two levels
    type: str  # VARCHAR | DOUBLE | INTEGER | BOOLEAN | TIMESTAMP | DATE | OBJECT
    required: bool = False

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class DatasetSpec:
    """How one landing dataset is validated and written."""

    name: str
    fields: tuple[Field, ...]
    key: str  # dedupe key column
    partition: str  # partition column of the lake output
    lake_columns: tuple[tuple[str, str], ...]  # (name, type) in file order
    #: extra (condition, reason) rules after the type checks; may use v_<column>,
    #: batch_start, batch_end (TIMESTAMP) and late_days (INTEGER).
    rules: tuple[tuple[str, str], ...] = ()


def _type_of(columns: tuple[tuple[str, str], ...], name: str) -> str:
    return dict(columns)[name]


def _event_fields() -> tuple[Field, ...]:
    t = dict(RAW_EVENT_COLUMNS)
    fields = [
        Field("event_id", ("event_id",), "VARCHAR", True),
        Field("event_time", ("event_time",), "TIMESTAMP", True),
        Field("event_type", ("event_type",), "VARCHAR", True),
        Field("anonymous_id", ("anonymous_id",), "VARCHAR", True),
        Field("user_id", ("user_id",), "VARCHAR"),
        Field("item_id", ("item_id",), "VARCHAR"),
        Field("page", ("page",), "VARCHAR"),
        Field("properties", ("properties",), OBJECT),
        Field("context", ("context",), OBJECT),
    ]
    fields += [Field(k, ("properties", k), t[k]) for k in PROPERTY_KEYS]
    fields += [Field(k, ("context", k), t[k]) for k in CONTEXT_KEYS]
    return tuple(fields)


def _sql_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


EVENTS = DatasetSpec(
    name="events",
    fields=_event_fields(),
    key="event_id",
    partition="event_date",
    lake_columns=RAW_EVENT_COLUMNS,
    rules=(
        (f"v_event_type not in {_sql_list(EVENT_TYPES)}", "unknown_event_type"),
        (
            f"v_event_type in {_sql_list(PRODUCT_EVENT_TYPES)} and coalesce(v_item_id, '') = ''",
            "missing_field:item_id",
        ),
        # an experiment's events carry both its id and the visitor's variant
        ("v_experiment_id is not null and v_variant is null", "missing_field:context.variant"),
        (
            "v_variant is not null and v_experiment_id is null",
            "missing_field:context.experiment_id",
        ),
        (f"v_variant not in {_sql_list(VARIANTS)}", "unknown_variant"),
        ("v_event_time > batch_end + interval 1 hour", "future_event_time"),
        ("v_event_time < batch_start - to_days(late_days)", "too_late"),
    ),
)

ITEMS = DatasetSpec(
    name="catalog",
    fields=tuple(
        Field(c, (c,), typ, c == "item_id")
        for c, typ in ITEM_LAKE_COLUMNS
        if c not in ("received_at", "source_file", "source_line", "snapshot_date")
    ),
    key="item_id",
    partition="snapshot_date",
    lake_columns=ITEM_LAKE_COLUMNS,
)

CUSTOMERS = DatasetSpec(
    name="customers",
    fields=tuple(
        Field(c, (c,), typ, c == "user_id")
        for c, typ in CUSTOMER_LAKE_COLUMNS
        if c not in ("received_at", "source_file", "source_line", "snapshot_date")
    ),
    key="user_id",
    partition="snapshot_date",
    lake_columns=CUSTOMER_LAKE_COLUMNS,
)

SPECS: dict[str, DatasetSpec] = {s.name: s for s in (EVENTS, ITEMS, CUSTOMERS)}

# Whitespace JSON allows around a document: space, tab, CR, LF.
_WS = "chr(32) || chr(9) || chr(13) || chr(10)"


#: Contract types whose JSON value is a string: transformed straight to VARCHAR (unescaped,
#: no JSON text to parse again); every other leaf comes back as JSON text.
_STRING_TYPES = frozenset({"VARCHAR", "TIMESTAMP", "DATE"})


def _target(f: Field) -> str:
    """The json_transform type of a leaf."""
    return "VARCHAR" if f.type in _STRING_TYPES else "JSON"


def _struct(fields: list[Field]) -> str:
    return json.dumps({f.path[-1]: _target(f) for f in fields}, separators=(",", ":"))


def _leaf_ref(f: Field, inline: frozenset[str] = frozenset()) -> str:
    if len(f.path) == 1:
        return f"d.{_q(f.path[0])}"
    if f.path[0] in inline:
        return f"d.{_q(f.path[0])}.{_q(f.path[1])}"
    return f"n_{f.path[0]}.{_q(f.path[1])}"


def _inline_object(parent: str, keys: list[str]) -> str:
    """TRUE when the inline-transformed object ``d.<parent>`` was a JSON object, NULL when it
    was absent, null or of another type.

    json_transform turns a non-object into a struct of NULL leaves, like ``{}``: only when
    every leaf is NULL is the line asked again, for that one value's JSON type (rare)."""
    ref = f"d.{_q(parent)}"
    any_leaf = " or ".join(f"{ref}.{_q(k)} is not null" for k in keys)
    path = "$." + json.dumps(parent)
    return (
        f"case when {ref} is null then null when {any_leaf} then true "
        f"when json_type(line, '{path}') = 'OBJECT' then true end"
    )


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _json_path(f: Field) -> str:
    return "$." + ".".join(json.dumps(k) for k in f.path)


def _typed(f: Field, t: str) -> str:
    """SQL for the field's value: its contract type, NULL if absent or of another type.

    A string-typed leaf ``t`` is the VARCHAR json_transform made of it: the string itself,
    or, when the value was a number, boolean, object or array, its JSON text. Such a text is
    valid JSON, so only a value that is valid JSON (a UUID or a word is not: json_valid
    stops at its first characters) is asked its type in the line (rare: an id of digits)."""
    if f.type in _STRING_TYPES:
        not_string = (
            f"case when json_valid({t}) then json_type(line, '{_json_path(f)}') <> 'VARCHAR' end"
        )
        value = {
            "VARCHAR": t,
            # UTC, naive: the instant's microseconds (a cast to TIMESTAMP would go through
            # ICU's calendar: twice the cost of the parse itself)
            "TIMESTAMP": f"make_timestamp(epoch_us(try_cast({t} as TIMESTAMPTZ)))",
            "DATE": f"try_cast({t} as DATE)",
        }[f.type]
        return f"case when {t} is not null and not coalesce({not_string}, false) then {value} end"
    is_number = f"(ascii({t}) between 48 and 57 or ascii({t}) = 45)"
    if f.type == "DOUBLE":
        return f"case when {is_number} then try_cast({t} as DOUBLE) end"
    if f.type in ("INTEGER", "BIGINT"):
        return (
            f"case when {is_number} and not (contains({t}, '.') or contains({t}, 'e') "
            f"or contains({t}, 'E')) "
            f"then try_cast({t} as {f.type}) end"
        )
    if f.type == "BOOLEAN":
        return f"case {t} when 'true' then true when 'false' then false end"
    if f.type == OBJECT:
        return f"case when starts_with({t}, '{{') then {t} end"
    raise ValueError(f"unsupported field type {f.type!r} for {f.dotted}")


def staging_sql(spec: DatasetSpec, *, source: str = "lines", files: str = "files") -> str:
    """``CREATE TEMP TABLE staged``: one row per physical line of ``source``.

    ``source`` has (file_id INTEGER, line_no BIGINT, line VARCHAR); ``files`` has
    (file_id, batch_start TIMESTAMP, batch_end TIMESTAMP, file_reason VARCHAR, late_days INTEGER):
    a file_reason (``content_changed``, ``truncated_gzip``, ...) quarantines every line of its file.
    ``staged`` has file_id, line_no, is_blank, reason (NULL = valid) and one ``v_<column>``
    per field that is a lake column or the key. The quarantine's ``raw_line`` is taken from
    ``source`` later, for the few quarantined rows only (:func:`quarantine_line_sql`):
    carrying every line's text through this query cost as much as validating it.
    """
    top = [f for f in spec.fields if len(f.path) == 1]
    nested_parents = sorted({f.path[0] for f in spec.fields if len(f.path) == 2})
    for parent in nested_parents:
        if not any(f.path == (parent,) and f.type == OBJECT for f in top):
            raise ValueError(f"{spec.name}: nested fields under {parent!r} need an OBJECT field")

    # Only the values something downstream reads are kept (the rest serve the checks).
    kept = {name for name, _ in spec.lake_columns} | {spec.key}

    def subkeys(parent: str) -> list[str]:
        return [f.path[1] for f in spec.fields if len(f.path) == 2 and f.path[0] == parent]

    # An object whose text is not kept (events: context) is transformed in the line's own
    # pass; one whose text is kept (properties) is transformed again from that text.
    inline = frozenset(p for p in nested_parents if p not in kept)

    def children(parent: str) -> list[Field]:
        return [f for f in spec.fields if len(f.path) == 2 and f.path[0] == parent]

    top_struct = json.dumps(
        {
            f.path[0]: json.loads(_struct(children(f.path[0])))
            if f.path[0] in inline
            else _target(f)
            for f in top
        },
        separators=(",", ":"),
    )
    nested_sql = ",\n        ".join(
        f"case when starts_with(d.{_q(p)}, '{{') then json_transform(d.{_q(p)}, "
        f"'{_struct(children(p))}')"
        f" end as n_{p}"
        for p in nested_parents
        if p not in inline
    )

    def typed(f: Field) -> str:
        if f.type == OBJECT and f.path[0] in inline:
            return _inline_object(f.path[0], subkeys(f.path[0]))
        return _typed(f, _leaf_ref(f, inline))

    typed_sql = ",\n        ".join(
        f"{typed(f)} as v_{f.column},\n        {_leaf_ref(f, inline)} is null as a_{f.column}"
        for f in spec.fields
    )
    rules: list[tuple[str, str]] = [
        ("not ok or not is_object", "invalid_json"),
    ]
    for f in spec.fields:
        if f.required:
            empty = f" or v_{f.column} = ''" if f.type == "VARCHAR" else ""
            rules.append((f"a_{f.column}{empty}", f"missing_field:{f.dotted}"))
    for f in spec.fields:
        rules.append((f"not a_{f.column} and v_{f.column} is null", f"bad_type:{f.dotted}"))
    rules.extend(spec.rules)
    reason_sql = "\n            ".join(f"when {cond} then '{reason}'" for cond, reason in rules)
    values = ", ".join(f"v_{f.column}" for f in spec.fields if f.column in kept)
    return f"""
create or replace temp table staged as
with parsed as (
    select
        l.file_id, l.line_no, l.line, f.batch_start, f.batch_end, f.file_reason, f.late_days,
        json_valid(l.line) as ok
    from {source} as l
    join {files} as f on f.file_id = l.file_id
),
docs as (
    select
        *,
        case when not ok then trim(line, {_WS}) = '' else false end as is_blank,
        case
            when not ok then false
            when starts_with(line, '{{') then true
            when starts_with(line, chr(10) || '{{') then true
            else left(ltrim(line, {_WS}), 1) = '{{'
        end as is_object,
        case when ok then json_transform(line, '{top_struct}') end as d
    from parsed
),
nested as (
    select *{"," if nested_sql else ""}
        {nested_sql}
    from docs
),
typed as (
    select
        file_id, line_no, line, is_blank, ok, is_object, file_reason, batch_start, batch_end,
        late_days,
        {typed_sql}
    from nested
),
checked as (
    select
        *,
        case
            when is_blank then null
            when file_reason is not null then file_reason
            {reason_sql}
        end as reason
    from typed
)
select
    file_id,
    line_no,
    is_blank,
    reason,
    {values}
from checked
"""


def quarantine_line_sql(line: str = "line") -> tuple[str, str]:
    """SQL for a quarantined line's ``raw_line`` and ``line_bytes`` from its physical line
    (which starts with the previous line's '\\n' and may end with '\\r')."""
    content = f"rtrim(ltrim({line}, chr(10)), chr(13))"
    return f"left({content}, {RAW_LINE_MAX_CHARS})", f"strlen({content})"
