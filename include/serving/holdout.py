"""The holdout experiment on the serving path: who is held out, and what they see.

Every personalised answer (``/v1/users/{user_id}/recommendations`` and
``/v1/sessions/recommendations``) carries the active experiment's id and the variant of ONE
assignment key (:mod:`common.experiment`: a salted hash), the stitched visitor id of dbt's
identity stitching (``int_identities_stitched``, ``int_events_sessionized``): a signed-in
customer's events belong to their ``user_id``, an anonymous device's to its anonymous id (or
to the device's last customer, which serving cannot know before the login). So the key is the
``user_id`` when the request names one (the path of the user endpoint; ``user_id`` in the
session body, whatever ``visitor_id`` says), else the session body's ``visitor_id``; a session
body must name one of them (422 otherwise), so no call gets personal lists past the holdout. A ``control`` visitor gets the shop's non-personal default list, the
global cold-start list of the published version, with ``source: "default"``; a ``treatment``
visitor gets the recommendations. The simulator's experiment week calls these same functions
on the published files (:mod:`include.simulator.experiment`).
"""

from __future__ import annotations

from common.experiment import CONTROL, Experiment
from include.serving.loader import Snapshot

SOURCE_DEFAULT = "default"


def default_items_json(snap: Snapshot, k: int) -> bytes:
    """The control's list: the first ``k`` items of the global cold-start list (JSON body)."""
    return snap.items_json("cold_start", snap.cold_start_key, k) or b""


def experiment_fields(experiment: Experiment, variant: str) -> bytes:
    """``,"experiment_id":"...","variant":"..."`` spliced into an answer (the seed's ids and
    the variants contain no JSON special character)."""
    return b"".join(
        (
            b',"experiment_id":"',
            experiment.experiment_id.encode(),
            b'","variant":"',
            variant.encode(),
            b'"',
        )
    )


def assignment_key(user_id: str | None, visitor_id: str | None) -> str:
    """The one key the experiment assigns by: the ``user_id`` when known, else ``visitor_id``
    (the stitched visitor id dbt gives the same person; see the module docstring)."""
    key = user_id or visitor_id
    if key is None:  # SessionRequest rejects this with a 422 before we get here
        raise ValueError("no assignment key: name the visitor (visitor_id or user_id)")
    return key


def is_held_out(experiment: Experiment, visitor_id: str) -> tuple[str, bool]:
    """The visitor's variant, and whether it is the control (shown the default list)."""
    variant = experiment.assign(visitor_id)
    return variant, variant == CONTROL
