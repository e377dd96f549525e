"""The holdout experiment on the serving path: who is held out, and what they see.

Every visitor-keyed answer (``/v1/users/{visitor_id}/recommendations``, and
``/v1/sessions/recommendations`` when the body names its ``visitor_id``) carries the active
experiment's id and the visitor's variant (:mod:`common.experiment`: a salted hash of the
stitched visitor id). A ``control`` visitor gets the shop's non-personal default list, the
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


def is_held_out(experiment: Experiment, visitor_id: str) -> tuple[str, bool]:
    """The visitor's variant, and whether it is the control (shown the default list)."""
    variant = experiment.assign(visitor_id)
    return variant, variant == CONTROL
