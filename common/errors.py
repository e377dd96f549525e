"""Error kinds every layer may raise or catch."""

from __future__ import annotations


class DeterministicFailure(Exception):
    """A failure the same inputs repeat: a failed data-quality gate, a failed definition of
    done. A task fails at once on it instead of spending its retries
    (:func:`include.tasks.fail_fast`); transient failures (a lock, a full disk) keep
    their retries."""
