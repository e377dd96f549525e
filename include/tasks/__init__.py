"""The task bodies the DAGs call: the only layer that may import all three libraries.

One module per DAG (or step family). A DAG file imports only this package (plus
``include.roles`` and ``include.assets`` for wiring); a task body here reads a mart, calls a
gate (``expectations``), calls the DS library (``recsys``) or DE plumbing (the rest of
``include``), and returns a small JSON-able summary for XCom.

Failures come in two kinds. A deterministic one (a data-quality gate, a failed definition of
done) gives the same answer on a retry, so :func:`fail_fast` turns it into Airflow's
fail-without-retry exception, keeping what the failure callback routes on (``owner_role``,
``details``, ``docs_url``). Anything else (a lock held, a full disk) keeps its retries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from airflow.sdk.exceptions import AirflowFailException

F = TypeVar("F", bound=Callable[..., Any])


class DeterministicFailure(AirflowFailException):
    """A failure a retry cannot fix; Airflow fails the task at once (no retry).

    Attributes
    ----------
    owner_role, details, docs_url
        What :func:`include.roles.on_failure` routes and links the notification with.
    """

    def __init__(
        self,
        message: str,
        owner_role: str | None = None,
        details: dict[str, Any] | None = None,
        docs_url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.owner_role = owner_role
        self.details = details
        self.docs_url = docs_url

    def __reduce__(self):  # picklable with its attributes (custom __init__ signature)
        return (type(self), (str(self), self.owner_role, self.details, self.docs_url))


def _deterministic(exc: BaseException) -> bool:
    """A data-quality gate's failure (expectations.GateFailed) is deterministic."""
    import sys

    gate = sys.modules.get("expectations.gate")  # only raised where it was imported
    return gate is not None and isinstance(exc, gate.GateFailed)


def fail_fast(fn: F) -> F:
    """Decorate a task body: a gate failure becomes a :class:`DeterministicFailure`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DeterministicFailure:
            raise
        except Exception as exc:
            if not _deterministic(exc):
                raise
            raise DeterministicFailure(str(exc), exc.owner_role, exc.details, exc.docs_url) from exc

    return wrapper  # type: ignore[return-value]
