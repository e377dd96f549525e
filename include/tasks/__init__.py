"""The task bodies the DAGs call: the only layer that may import all three libraries.

One module per DAG (or step family). A DAG file imports only this package (plus
``include.roles`` and ``include.assets`` for wiring); a task body here reads a mart, calls a
gate (``expectations``), calls the DS library (``recsys``) or DE plumbing (the rest of
``include``), and returns a small JSON-able summary for XCom.

Failures come in two kinds. A deterministic one (:class:`common.errors.DeterministicFailure`:
a data-quality gate, a failed definition of done, a batch that does not reconcile) gives the
same answer on a retry, so :func:`fail_fast` turns it into Airflow's fail-without-retry
exception, keeping what the failure callback routes on (``owner_role``, ``details``,
``docs_url``). Anything else (a lock held, a full disk) keeps its retries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from airflow.sdk.exceptions import AirflowFailException

from common.errors import DeterministicFailure

F = TypeVar("F", bound=Callable[..., Any])


class FailedWithoutRetry(AirflowFailException):
    """Airflow fails the task at once (no retry); the message starts with the original's type.

    Attributes
    ----------
    owner_role, details, docs_url
        Copied from the original: what :func:`include.roles.on_failure` routes and links with.
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

    @classmethod
    def from_exception(cls, exc: BaseException) -> FailedWithoutRetry:
        details = getattr(exc, "details", None)
        return cls(
            f"{type(exc).__name__}: {exc}",
            getattr(exc, "owner_role", None),
            details if isinstance(details, dict) else None,
            getattr(exc, "docs_url", None),
        )


def fail_fast(fn: F) -> F:
    """Decorate a task body: a :class:`~common.errors.DeterministicFailure` fails the task
    without retry (:class:`FailedWithoutRetry`, chained to the original)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DeterministicFailure as exc:
            raise FailedWithoutRetry.from_exception(exc) from exc

    return wrapper  # type: ignore[return-value]
