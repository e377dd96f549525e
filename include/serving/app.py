"""The recommendations API (FastAPI). ``create_app()`` builds it; see ``docs/serving.md``.

Hot paths (the two list endpoints) return pre-rendered JSON bytes from the current
:class:`~include.serving.loader.Snapshot`; the pydantic models below document those bodies in
the OpenAPI document, and the tests check that the bytes validate against them.
"""

from __future__ import annotations

import gc
import json
import os
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import APIKeyHeader
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from common.contracts import PRODUCT_EVENT_TYPES, PUBLISHED_LIST_LENGTH
from common.experiment import Experiment, active_experiment
from include.serving import metrics, problems
from include.serving.auth import API_KEY_HEADER, KeyRing, load_api_keys
from include.serving.holdout import (
    SOURCE_DEFAULT,
    assignment_key,
    default_items_json,
    experiment_fields,
    is_held_out,
)
from include.serving.loader import ID_PATTERN, ModelStore, Snapshot, model_store_from_settings
from include.serving.problems import FieldError, Problem
from include.serving.session import (
    CATEGORY_KEY_PREFIX,
    SOURCE_CATEGORY,
    SOURCE_POPULAR,
    SOURCE_SESSION,
    fuse_personal,
)
from include.settings import get_settings

API_TITLE = "Trasos recommendations API"
API_VERSION = "1.0.0"
#: The largest k the API answers: the length of every published list (batch scoring writes
#: exactly this many; asking for more would silently get fewer).
MAX_K = PUBLISHED_LIST_LENGTH
DEFAULT_K = 10
MODEL_VERSION_HEADER = "X-Model-Version"
POLL_ENV = "TRASOS_SERVING_POLL_S"
ID_RULE = (
    "1 to 64 characters from A-Z a-z 0-9 _ . : - , the first one a letter, digit or underscore"
)
_JSON = "application/json"

_EXAMPLE_ITEMS = [
    {"rank": 1, "item_id": "I000123", "score": 0.9312},
    {"rank": 2, "item_id": "I004567", "score": 0.8871},
]


# --- response models (the contract; OpenAPI is generated from these) ------------------------
class RecommendedItem(BaseModel):
    rank: int = Field(ge=1, description="1 is the best recommendation.")
    item_id: str = Field(description="Catalog item id.")
    score: float = Field(description="Model score; higher is better, comparable within a list.")


class UserRecommendations(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "U0000042",
                    "source": "personal",
                    "experiment_id": "recs-holdout-1",
                    "variant": "treatment",
                    "model_version": "20260301T020000Z-lightfm",
                    "generated_at": "2026-03-01T02:14:07Z",
                    "items": _EXAMPLE_ITEMS,
                }
            ]
        }
    )

    user_id: str = Field(description="The stitched visitor id: the user_id, else the anonymous id.")
    source: Literal["personal", "cold_start", "default"] = Field(
        description="'personal': the user's own list. 'cold_start': the user is unknown to "
        "this model version, so the global cold-start list answered. 'default': the visitor is "
        "in the experiment's control group and gets the shop's non-personal default list."
    )
    experiment_id: str = Field(description="The holdout experiment running (seed experiments).")
    variant: Literal["control", "treatment"] = Field(
        description="The visitor's variant (stable salted hash of the visitor id)."
    )
    model_version: str
    generated_at: datetime = Field(description="When the batch recommendations were computed.")
    items: list[RecommendedItem] = Field(description="At most k items, best first.")


class AlsoBought(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "item_id": "I000123",
                    "model_version": "20260301T020000Z-lightfm",
                    "generated_at": "2026-03-01T02:14:07Z",
                    "items": _EXAMPLE_ITEMS,
                }
            ]
        }
    )

    item_id: str
    model_version: str
    generated_at: datetime
    items: list[RecommendedItem] = Field(description="At most k items, best first.")


MAX_SESSION_EVENTS = 200
SessionItemId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
EventType = Literal[PRODUCT_EVENT_TYPES]  # type: ignore[valid-type]


class SessionEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    item_id: SessionItemId = Field(description=f"Catalog item id: {ID_RULE}.")
    event_type: EventType | None = Field(
        default=None,
        description="Optional product event type. The current model weighs every product "
        "event the same; the field is validated and kept for future models.",
    )


class SessionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # no coercion: 0 is not false, "10" is not 10
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {"item_id": "I000123", "event_type": "product_view"},
                        {"item_id": "I004567", "event_type": "product_view"},
                        {"item_id": "I000123", "event_type": "add_to_cart"},
                    ],
                    "k": 10,
                    "exclude_seen": True,
                    "visitor_id": "a1b2c3d4-anon",
                }
            ],
            # the holdout experiment assigns every answer by one key: name the visitor (a
            # present key holding null names nobody, so each branch also demands a string)
            "anyOf": [
                {"required": ["visitor_id"], "properties": {"visitor_id": {"type": "string"}}},
                {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
            ],
        },
    )

    events: list[SessionEvent] = Field(
        max_length=MAX_SESSION_EVENTS,
        description=f"The session's product events, oldest first (at most "
        f"{MAX_SESSION_EVENTS}). Empty: a visitor with nothing yet.",
    )
    k: int = Field(default=DEFAULT_K, ge=1, le=MAX_K, description=f"Items to return (1..{MAX_K}).")
    exclude_seen: bool = Field(
        default=True, description="Leave out the items already in the session."
    )
    user_id: SessionItemId | None = Field(
        default=None,
        description="A signed-in visitor's customer id (optional). When the model version has "
        "a personal list for this user, the session's items and the personal list are merged "
        'by reciprocal-rank fusion (items of both `source: "session"` or `"personal"`, '
        "whichever ranks the item higher); unknown users get the session answer alone.",
    )
    visitor_id: SessionItemId | None = Field(
        default=None,
        description="The visitor: the anonymous (device) id, or the customer id once signed in. "
        "At least one of `visitor_id` and `user_id` is required: the holdout experiment assigns "
        "the answer's variant by `user_id` when given, else by `visitor_id` (the stitched "
        "visitor id of dbt's identity stitching); the control gets the default list.",
    )

    @model_validator(mode="after")
    def _names_the_visitor(self) -> SessionRequest:
        if self.visitor_id is None and self.user_id is None:
            raise ValueError(
                "name the visitor: visitor_id (the anonymous id) or user_id (signed in); every "
                "answer carries the visitor's variant of the holdout experiment"
            )
        return self

    @field_validator("k", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        # JSON Schema's integer admits 64.0; strict mode alone would reject it
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @property
    def item_ids(self) -> list[str]:
        return [e.item_id for e in self.events]


class SessionItem(RecommendedItem):
    source: Literal["session", "personal", "popular-in-category", "popular", "default"] = Field(
        description="'session': scored from the session's items; 'personal': from the "
        "user's personal list (with `user_id`); 'popular-in-category': popular in the "
        "category of the session's latest item; 'popular': globally popular; 'default': the "
        "experiment's control group gets the shop's default list."
    )


class SessionRecommendations(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_version": "20260301T020000Z-lightfm",
                    "generated_at": "2026-03-01T02:14:07Z",
                    "known_items": 2,
                    "personal_items": 0,
                    "experiment_id": "recs-holdout-1",
                    "variant": "treatment",
                    "items": [
                        {"rank": 1, "item_id": "I000124", "score": 1.5, "source": "session"},
                        {"rank": 2, "item_id": "I000777", "score": 0.0, "source": "popular"},
                    ],
                }
            ]
        }
    )

    model_version: str
    generated_at: datetime
    known_items: int = Field(
        description="How many distinct session items the session model knows (0: only "
        "popular lists could answer)."
    )
    personal_items: int = Field(
        default=0,
        description="How many items of the user's personal list took part in the ranking (0: no "
        "`user_id`, or a user this model version does not know).",
    )
    experiment_id: str = Field(description="The holdout experiment running (seed experiments).")
    variant: Literal["control", "treatment"] = Field(
        description="The visitor's variant: of `user_id` when the body named one, else of "
        "`visitor_id` (stable salted hash)."
    )
    items: list[SessionItem] = Field(description="At most k items, best first.")


class ColdStartList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "segment": "trending",
                    "model_version": "20260301T020000Z-lightfm",
                    "generated_at": "2026-03-01T02:14:07Z",
                    "items": _EXAMPLE_ITEMS,
                }
            ]
        }
    )

    segment: str = Field(description="'all' or 'popular', 'trending', or 'category:<name>'.")
    model_version: str
    generated_at: datetime
    items: list[RecommendedItem] = Field(description="At most k items, best first.")


class ModelCounts(BaseModel):
    users: int = Field(description="Users with a personal list.")
    items: int = Field(description="Items with an also-bought list.")
    cold_start_segments: list[str] = Field(description="'all' plus any 'category:<name>'.")
    rows: int


class ModelInfo(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_version": "20260301T020000Z-lightfm",
                    "trained_at": "2026-03-01T02:00:00Z",
                    "generated_at": "2026-03-01T02:14:07Z",
                    "loaded_at": "2026-03-01T02:15:01Z",
                    "candidate": "lightfm",
                    "kind": "candidate",
                    "kind_reason": "passed its definition of done",
                    "metrics": {"ndcg@10": 0.142, "recall@20": 0.231},
                    "cold_start_fallback": "all",
                    "counts": {
                        "users": 100000,
                        "items": 20000,
                        "cold_start_segments": ["all", "category:dresses"],
                        "rows": 2400080,
                    },
                }
            ]
        }
    )

    model_version: str
    trained_at: datetime
    generated_at: datetime
    loaded_at: datetime = Field(description="When this server process loaded the version.")
    candidate: str = Field(description="Name of the model that won the evaluation.")
    kind: Literal["candidate", "baseline"] = Field(
        default="candidate",
        description="candidate: passed its definition of done; baseline: no candidate has "
        "passed yet and nothing was published before, so the best baseline is served until "
        "one does (kind_reason says why).",
    )
    kind_reason: str = Field(default="", description="Why this kind was published.")
    metrics: dict[str, float] = Field(description="Offline metrics of the published model.")
    cold_start_fallback: str = Field(
        description="The cold-start segment unknown users get ('all', else 'popular')."
    )
    counts: ModelCounts


class Health(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "model_version": "20260301T020000Z-lightfm",
                    "loaded_at": "2026-03-01T02:15:01Z",
                }
            ]
        }
    )

    status: Literal["ok"]
    model_version: str
    loaded_at: datetime


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _problem(f"No API key: send one in the {API_KEY_HEADER} header."),
    403: _problem("The API key is not valid."),
    503: _problem("No model version is loaded yet."),
}
_INVALID = {
    422: _problem(
        "Invalid input (k out of range, malformed id, unknown query parameter); `detail` says what."
    )
}
_VERSION_HEADER_DOC = {
    MODEL_VERSION_HEADER: {
        "description": "The model version that answered (same as `model_version`).",
        "schema": {"type": "string"},
    }
}

UserId = Annotated[
    str,
    PathParam(pattern=ID_PATTERN, description=f"Customer id: {ID_RULE}.", examples=["U0000042"]),
]
Segment = Annotated[
    str,
    PathParam(
        pattern=ID_PATTERN,
        description="A cold-start list: 'all' or 'popular' (global), 'trending', or "
        "'category:<name>' (see `counts.cold_start_segments` of `/v1/model`).",
        examples=["trending"],
    ),
]
ItemId = Annotated[
    str,
    PathParam(pattern=ID_PATTERN, description=f"Item id: {ID_RULE}.", examples=["I000123"]),
]
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"How many items to return (1..{MAX_K}).")]


_API_KEY_SCHEME = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="ApiKeyAuth",
    description=f"An API key in the `{API_KEY_HEADER}` header (see docs/serving.md).",
    auto_error=False,
)


async def require_api_key(
    request: Request, key: Annotated[str | None, Security(_API_KEY_SCHEME)]
) -> None:
    """401 without a key, 403 with a wrong one (constant-time comparison); then 422 for
    unknown query parameters (one dependency, not two: each costs ~20 us a request)."""
    if not key:
        raise HTTPException(401, f"missing API key: send it in the {API_KEY_HEADER} header")
    if not request.app.state.keyring().accepts(key):
        raise HTTPException(403, "invalid API key")
    _reject_unknown_query_parameters(request)


async def known_query_parameters_only(request: Request) -> None:
    _reject_unknown_query_parameters(request)


def _reject_unknown_query_parameters(request: Request) -> None:
    """422 for query parameters the endpoint does not declare (a typo like ``?limit=5`` would
    otherwise silently return the default ``k``)."""
    if not request.query_params:
        return
    allowed = {p.alias for p in request.scope["route"].dependant.query_params}
    unknown = [name for name in request.query_params if name not in allowed]
    if unknown:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": "unknown query parameter (allowed: "
                    + (", ".join(sorted(allowed)) or "none")
                    + ")",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )


def user_body(snap: Snapshot, user_id: str, k: int, experiment: Experiment) -> bytes:
    """UserRecommendations as JSON bytes (``user_id`` already matches ID_PATTERN): the
    visitor's variant in ``experiment``; the control gets the default list."""
    variant, held_out = is_held_out(experiment, user_id)
    if held_out:
        items = default_items_json(snap, k)
        source = SOURCE_DEFAULT.encode()
    else:
        items = snap.items_json("user", user_id, k)
        source = b"personal"
        if items is None:
            items = snap.items_json("cold_start", snap.cold_start_key, k) or b""
            source = b"cold_start"
    # The id pattern admits no JSON special character: no escaping needed.
    return b"".join(
        (
            b'{"user_id":"',
            user_id.encode(),
            b'","source":"',
            source,
            b'"',
            experiment_fields(experiment, variant),
            snap.version_fields,
            b',"items":[',
            items,
            b"]}",
        )
    )


def also_bought_body(snap: Snapshot, item_id: str, k: int) -> bytes | None:
    """AlsoBought as JSON bytes, or None when the item has no list."""
    items = snap.items_json("also_bought", item_id, k)
    if items is None:
        return None
    return b"".join(
        (b'{"item_id":"', item_id.encode(), b'"', snap.version_fields, b',"items":[', items, b"]}")
    )


def _list_ids(snap: Snapshot, key: str, k: int) -> list[str]:
    raw = snap.items_json("cold_start", key, k)
    if not raw:
        return []
    return [row["item_id"] for row in json.loads(b"[" + raw + b"]")]


def _personal_ids(snap: Snapshot, user_id: str, k: int) -> list[str]:
    """The user's personal list (at most ``k`` ids), empty when the version lacks one."""
    raw = snap.items_json("user", user_id, k)
    if not raw:
        return []
    return [row["item_id"] for row in json.loads(b"[" + raw + b"]")]


def session_items(snap: Snapshot, request: SessionRequest) -> tuple[list[dict[str, Any]], int, int]:
    """The ranked items for a session, how many of its items the model knows, and how many
    personal items were merged in.

    Session-scored items first (fused with the user's personal list when ``user_id`` names a
    known user); then the popular list of the category of the session's latest categorised
    item; then the global popular list. Session items are left out when ``exclude_seen``; no
    item appears twice.
    """
    k = request.k
    item_ids = request.item_ids
    seen = set(item_ids) if request.exclude_seen else set()
    scored: list[tuple[str, float]] = []
    known = 0
    index = snap.session
    if index is not None and item_ids:
        rows, scores = index.score(item_ids)
        known = len({i for i in item_ids[-index.max_session_items :] if i in index.codes})
        ids = index.ids
        for row, value in zip(rows[: k + len(seen)].tolist(), scores.tolist(), strict=False):
            item = ids[row]
            if item in seen:
                continue
            scored.append((item, float(value)))
            if len(scored) == k:
                break
    personal: list[str] = []
    if request.user_id is not None:
        personal = [i for i in _personal_ids(snap, request.user_id, k + len(seen)) if i not in seen]
    if personal:
        ranked = fuse_personal(scored, personal, k)
    else:
        ranked = [(item, round(value, 6), SOURCE_SESSION) for item, value in scored]
    out = [{"item_id": i, "score": v, "source": src} for i, v, src in ranked]
    taken = {row["item_id"] for row in out}
    if len(out) < k:
        fills: list[tuple[str, str]] = []
        cat = index.category_of_session(item_ids) if index is not None else None
        if cat is not None:
            key = CATEGORY_KEY_PREFIX + cat
            fills += [(i, SOURCE_CATEGORY) for i in _list_ids(snap, key, k + len(seen))]
        fills += [
            (i, SOURCE_POPULAR) for i in _list_ids(snap, snap.cold_start_key, 2 * k + len(seen))
        ]
        for item, source in fills:
            if item in seen or item in taken:
                continue
            out.append({"item_id": item, "score": 0.0, "source": source})
            taken.add(item)
            if len(out) == k:
                break
    for rank, row in enumerate(out, start=1):
        row["rank"] = rank
    return out, known, len(personal)


def session_body(snap: Snapshot, request: SessionRequest, experiment: Experiment) -> bytes:
    """SessionRecommendations as JSON bytes, with the variant in ``experiment`` of the
    request's assignment key (:func:`include.serving.holdout.assignment_key`: ``user_id``, else
    ``visitor_id``); the control gets the default list, every item ``source: "default"``."""
    key = assignment_key(request.user_id, request.visitor_id)
    variant, held_out = is_held_out(experiment, key)
    if held_out:
        known = personal = 0
        rows = json.loads(b"[" + default_items_json(snap, request.k) + b"]")
        items = [{**row, "source": SOURCE_DEFAULT} for row in rows]
    else:
        items, known, personal = session_items(snap, request)
    extra = experiment_fields(experiment, variant)
    return b"".join(
        (
            b'{"known_items":',
            str(known).encode(),
            b',"personal_items":',
            str(personal).encode(),
            extra,
            snap.version_fields,
            b',"items":',
            json.dumps(items, separators=(",", ":")).encode(),
            b"}",
        )
    )


class FastLists:
    """Pure-ASGI answer to the two list endpoints on their happy path only.

    FastAPI's parameter and dependency machinery costs ~150 us a request; this, ~10 us.
    It answers only when everything is unambiguously valid: a GET to exactly
    ``/v1/users/{id}/recommendations`` or ``/v1/items/{id}/also-bought``, a valid API key (one
    ``X-API-Key`` header), an id that fully matches ID_PATTERN, no query string or exactly
    ``k=<1..100>`` in canonical form, a loaded model, and (also-bought) a known item. Anything
    else, every error included, goes on to FastAPI, so status codes and error bodies have one
    source. The bodies come from the same functions as the FastAPI handlers; a test compares
    both paths.
    """

    def __init__(self, app: Any, store: ModelStore, ring: Any, experiment: Experiment) -> None:
        self.app = app
        self.store = store
        self.ring = ring
        self.experiment = experiment

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            body, version = self._answer(scope)
            if body is not None:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-length", str(len(body)).encode()),
                            (b"content-type", b"application/json"),
                            (b"x-model-version", version),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: dict[str, Any]) -> tuple[bytes | None, bytes]:
        parts = scope["path"].split("/")
        # ['', 'v1', 'users', id, 'recommendations'] or ['', 'v1', 'items', id, 'also-bought']
        if len(parts) != 5 or parts[1] != "v1" or not _ID_FULLMATCH(parts[3]):
            return None, b""
        kind = (parts[2], parts[4])
        route = _FAST_ROUTES.get(kind)
        if route is None:
            return None, b""
        query = scope["query_string"]
        if not query:
            k = DEFAULT_K
        else:
            k = _CANONICAL_K.get(query, 0)
            if not k:
                return None, b""
        key = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                if key is not None:
                    return None, b""
                key = value
        if key is None or not self.ring().accepts(key.decode("latin-1")):
            return None, b""
        snap = self.store.current
        if snap is None:
            return None, b""
        if kind[0] == "users":
            body = user_body(snap, parts[3], k, self.experiment)
        else:
            body = also_bought_body(snap, parts[3], k)
        scope[metrics.ROUTE_KEY] = route  # the metrics' route label: no route matching
        return body, snap.model_version.encode()


#: The route templates of the fast path's answers (the endpoints below declare the same)
_FAST_ROUTES = {
    ("users", "recommendations"): "/v1/users/{user_id}/recommendations",
    ("items", "also-bought"): "/v1/items/{item_id}/also-bought",
}
_ID_FULLMATCH = re.compile(ID_PATTERN).fullmatch  # fullmatch: no trailing-newline loophole
_CANONICAL_K = {f"k={k}".encode(): k for k in range(1, MAX_K + 1)}


def _validation_message(error: dict[str, Any]) -> FieldError:
    location = ".".join(str(part) for part in error.get("loc", ()))
    message = error.get("msg", "invalid")
    if error.get("type") == "string_pattern_mismatch":
        message = f"must be {ID_RULE}"
    given = error.get("input")
    if isinstance(given, str | int | float):
        message += f" (got {str(given)[:80]!r})"
    return FieldError(location=location, message=message)


def create_app(
    store: ModelStore | None = None,
    api_keys: Sequence[str] | None = None,
    *,
    start_watcher: bool = True,
    fast_path: bool = True,
    freeze_gc: bool = False,
    experiment: Experiment | None = None,
) -> FastAPI:
    """The API over ``store`` (default: follow ``settings.published_dir``).

    ``api_keys`` None reads them at startup (:func:`include.serving.auth.load_api_keys`).
    With ``start_watcher``, startup loads the current version and starts the watcher thread.
    ``fast_path`` answers the list endpoints' valid requests without FastAPI (:class:`FastLists`).
    ``experiment`` None reads the active one (:func:`common.experiment.active_experiment`).
    ``freeze_gc`` (server processes only, see :func:`serve_app`) moves everything alive after
    the first load out of the garbage collector's reach (:func:`gc.freeze`).
    """
    if store is None:
        store = model_store_from_settings(poll_interval=float(os.environ.get(POLL_ENV, "1.0")))
    keyring: list[KeyRing] = [] if api_keys is None else [KeyRing(api_keys)]
    # the holdout experiment (seed experiments, common.experiment), read once
    experiment = experiment or active_experiment()

    def ring() -> KeyRing:
        if not keyring:
            keyring.append(KeyRing(load_api_keys()[0]))
        return keyring[0]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ring()
        if start_watcher:
            store.start()
        if freeze_gc:
            # Everything alive now (modules, the first model) is long-lived: keep it out of
            # the collector's full passes, which would otherwise pause requests for ms.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if start_watcher:
                store.stop()

    app = FastAPI(
        title=API_TITLE,
        version=API_VERSION,
        summary="Batch recommendations of the current published model, for the Scala backend.",
        description=(
            "Serves the published, immutable recommendation files of the current model "
            "version (`<published_dir>/CURRENT`); a new version is picked up within about a "
            "second, without restart. Every endpoint except `/v1/health` needs an API key in "
            f"the `{API_KEY_HEADER}` header: missing -> 401, wrong -> 403. This documentation "
            "(`/docs`, `/redoc`, `/openapi.json`) is public on purpose: it is the document "
            "committed as docs/openapi.json and holds no data. Invalid input -> "
            "422 with a message. Every error is an RFC 7807 problem document "
            "(`application/problem+json`). `/metrics`: Prometheus metrics, with the key. "
            "See docs/serving.md."
        ),
        lifespan=lifespan,
        servers=[{"url": "http://127.0.0.1:8000", "description": "make serve (loopback)"}],
    )
    app.state.store = store
    app.state.keyring = ring
    if fast_path:
        app.add_middleware(FastLists, store=store, ring=ring, experiment=experiment)

    def snapshot() -> Snapshot:
        snap = store.current
        if snap is None:
            raise HTTPException(503, "no model version is loaded yet (nothing published?)")
        return snap

    problems.install(app, _validation_message)

    authed = [Depends(require_api_key)]

    @app.get(
        "/v1/users/{user_id}/recommendations",
        operation_id="getUserRecommendations",
        summary="Personal recommendations for a user (cold-start list for unknown users)",
        tags=["recommendations"],
        response_model=UserRecommendations,
        responses={200: {"headers": _VERSION_HEADER_DOC}, **_AUTH_ERRORS, **_INVALID},
        dependencies=authed,
    )
    async def user_recommendations(user_id: UserId, k: K = DEFAULT_K) -> Response:
        """The user's top-k items. A user this model version does not know gets the global
        cold-start list, with `source: "cold_start"`; known users get `source: "personal"`."""
        snap = snapshot()
        body = user_body(snap, user_id, k, experiment)
        return Response(body, media_type=_JSON, headers={MODEL_VERSION_HEADER: snap.model_version})

    @app.get(
        "/v1/items/{item_id}/also-bought",
        operation_id="getAlsoBought",
        summary="Customers who bought this item also bought",
        tags=["recommendations"],
        response_model=AlsoBought,
        responses={
            200: {"headers": _VERSION_HEADER_DOC},
            404: _problem("The item has no also-bought list in the current model version."),
            **_AUTH_ERRORS,
            **_INVALID,
        },
        dependencies=authed,
    )
    async def also_bought(item_id: ItemId, k: K = DEFAULT_K) -> Response:
        """Top-k items bought by customers who bought `item_id`. An item the current model
        version has no list for is a 404 (no fallback: a popular-items list would be
        mislabelled as 'also bought'; the caller decides what to show instead)."""
        snap = snapshot()
        body = also_bought_body(snap, item_id, k)
        if body is None:
            raise HTTPException(
                404,
                f"unknown item_id {item_id!r}: model version {snap.model_version} has no "
                "also-bought list for it",
            )
        return Response(body, media_type=_JSON, headers={MODEL_VERSION_HEADER: snap.model_version})

    @app.post(
        "/v1/sessions/recommendations",
        operation_id="getSessionRecommendations",
        summary="Recommendations for a visitor's current session (anonymous visitors included)",
        tags=["recommendations"],
        response_model=SessionRecommendations,
        responses={
            200: {"headers": _VERSION_HEADER_DOC},
            400: _problem("The body is not parseable JSON."),
            **_AUTH_ERRORS,
            422: _problem(
                "Invalid body (malformed item id or event type, k out of range, too many "
                "events, unknown field); `detail` says what."
            ),
        },
        dependencies=authed,
    )
    async def session_recommendations(body: SessionRequest) -> Response:
        """Top-k items for the session's items, oldest first: the session model's neighbours
        (`source: "session"`), then popular in the category of the session's latest item
        (`"popular-in-category"`), then globally popular (`"popular"`). Items the model does
        not know are skipped; a session of unknown items gets the popular lists."""
        snap = snapshot()
        return Response(
            session_body(snap, body, experiment),
            media_type=_JSON,
            headers={MODEL_VERSION_HEADER: snap.model_version},
        )

    @app.get(
        "/v1/cold-start/{segment}",
        operation_id="getColdStartList",
        summary="A list for visitors with nothing yet: popular, trending, popular in a category",
        tags=["recommendations"],
        response_model=ColdStartList,
        responses={
            200: {"headers": _VERSION_HEADER_DOC},
            404: _problem("The current model version has no such cold-start list."),
            **_AUTH_ERRORS,
            **_INVALID,
        },
        dependencies=authed,
    )
    async def cold_start(segment: Segment, k: K = DEFAULT_K) -> Response:
        """The top-k items of a published cold-start list: `trending` (recent momentum),
        `category:<name>` (popular in a category, e.g. for a category landing page), or the
        global list (`all`, or `popular` in versions that name it so)."""
        snap = snapshot()
        items = snap.items_json("cold_start", segment, k)
        if items is None:
            known = sorted(snap.index["cold_start"])
            raise HTTPException(
                404,
                f"unknown segment {segment!r}: model version {snap.model_version} has "
                f"{len(known)} cold-start lists, e.g. {known[:5]}",
            )
        body = b"".join(
            (
                b'{"segment":"',
                segment.encode(),
                b'"',
                snap.version_fields,
                b',"items":[',
                items,
                b"]}",
            )
        )
        return Response(body, media_type=_JSON, headers={MODEL_VERSION_HEADER: snap.model_version})

    @app.get(
        "/v1/model",
        operation_id="getModel",
        summary="The model version being served, when it was trained, its headline metrics",
        tags=["model"],
        response_model=ModelInfo,
        responses={200: {"headers": _VERSION_HEADER_DOC}, **_AUTH_ERRORS, **_INVALID},
        dependencies=authed,
    )
    async def model(response: Response) -> ModelInfo:
        snap = snapshot()
        response.headers[MODEL_VERSION_HEADER] = snap.model_version
        return ModelInfo(
            model_version=snap.model_version,
            trained_at=snap.trained_at,
            generated_at=snap.generated_at,
            loaded_at=snap.loaded_at,
            candidate=snap.candidate,
            kind=snap.kind,
            kind_reason=snap.kind_reason,
            metrics=snap.metrics,
            cold_start_fallback=snap.cold_start_key,
            counts=ModelCounts(
                users=snap.count("user"),
                items=snap.count("also_bought"),
                cold_start_segments=sorted(snap.index["cold_start"]),
                rows=snap.rows,
            ),
        )

    @app.get(
        "/v1/health",
        operation_id="getHealth",
        summary="Readiness (no authentication)",
        tags=["ops"],
        response_model=Health,
        responses={503: _problem("No model version is loaded yet: not ready."), **_INVALID},
        dependencies=[Depends(known_query_parameters_only)],
        openapi_extra={"security": []},
    )
    async def health() -> Response:
        """200 when a model version is loaded and served, 503 before. **No API key needed**
        (for load balancers and probes); it reveals only the version being served."""
        snap = store.current
        if snap is None:
            raise HTTPException(503, "no model version is loaded yet")
        return Response(
            json.dumps(
                {"status": "ok", "model_version": snap.model_version, "loaded_at": snap.loaded_at}
            ),
            media_type=_JSON,
        )

    # GET /metrics; its middleware is added last, so it wraps FastLists: fast answers count too
    metrics.install(
        app,
        store,
        dependencies=[Depends(require_api_key)],
        responses={401: _AUTH_ERRORS[401], 403: _AUTH_ERRORS[403], **_INVALID},
    )

    return app


def serve_app() -> FastAPI:
    """The uvicorn factory of ``python -m include.serving serve`` (one call per worker)."""
    return create_app(freeze_gc=True)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document as committed in ``docs/openapi.json`` (no I/O, no keys needed)."""
    app = create_app(store=ModelStore(get_settings().published_dir), api_keys=[])
    return app.openapi()


def render_openapi() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
