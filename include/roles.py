"""Roles as code: who owns what, and how a failure reaches its owner.

Every DAG takes its role tag, owner, retries, ``doc_md`` and ``on_failure_callback``
from :func:`dag_kwargs`. A failure (a task, or a data-quality gate) is routed with
:func:`notify`: it appends one structured JSON record to the notifications file under
the data directory and, when configured by environment, sends it through Airflow's
Slack or SMTP notifiers.

Environment (all optional):

``TRASOS_NOTIFY_SLACK_CONN_ID``
    an Airflow Slack Incoming Webhook connection id; every notification is posted there.
``TRASOS_NOTIFY_EMAIL_DE`` / ``_DS`` / ``_DA``
    comma-separated addresses; sent through Airflow's ``smtp_default`` connection.
``TRASOS_RETRY_DELAY_SECONDS``
    seconds before a failed task's retry (default :data:`RETRY_DELAY_SECONDS`); the test
    suite sets 1, so a DAG test whose task fails does not wait half a minute for its retry.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from include.settings import get_settings

log = logging.getLogger(__name__)

#: Seconds before a failed task is retried, unless ``TRASOS_RETRY_DELAY_SECONDS`` says otherwise.
RETRY_DELAY_SECONDS = 30


class Role(StrEnum):
    """The three roles. The value is the DAG tag."""

    DE = "DE"
    DS = "DS"
    DA = "DA"


@dataclass(frozen=True)
class RoleInfo:
    role: Role
    owner: str  # the Airflow `owner` of that role's DAGs and tasks
    title: str
    owns: str


ROLES: dict[Role, RoleInfo] = {
    Role.DE: RoleInfo(
        Role.DE,
        "data-engineering",
        "Data engineering",
        "event collection and storage, ingestion and transform DAGs, core marts, GX gates",
    ),
    Role.DS: RoleInfo(
        Role.DS,
        "data-science",
        "Data science",
        "features, the model, its metrics and definition of done, model monitoring",
    ),
    Role.DA: RoleInfo(
        Role.DA,
        "data-analytics",
        "Data analytics",
        "business metrics marts, dashboards and reports",
    ),
}
ROLE_TAGS: frozenset[str] = frozenset(r.value for r in Role)
OWNER_TO_ROLE: dict[str, Role] = {info.owner: role for role, info in ROLES.items()}

#: What a role may do on its OWN DAGs, as Airflow DAG-level permissions (FAB auth manager:
#: ``DAG:<dag_id>`` and ``DAG Run:<dag_id>``). Every role reads every DAG through its
#: Airflow role (``include.airflowctl.TEAM_PERMISSIONS``); editing a DAG (pause, clear) and
#: creating or deleting its runs (trigger) is granted here, DAG by DAG, to the owning role only.
#: The Airflow role of a team has the same name as its tag (``DE``, ``DS``, ``DA``).
OWN_DAG_PERMISSIONS: dict[str, frozenset[str]] = {
    "DAGs": frozenset({"can_read", "can_edit", "can_delete"}),
    "DAG Runs": frozenset({"can_read", "can_create", "can_delete"}),
}


def access_control(role: Role) -> dict[str, dict[str, set[str]]]:
    """The ``access_control`` of a DAG owned by ``role`` (only that role may act on it)."""
    return {
        role.value: {resource: set(actions) for resource, actions in OWN_DAG_PERMISSIONS.items()}
    }


def notify(
    role: Role | str,
    *,
    subject: str,
    error: str,
    dag_id: str | None = None,
    task_id: str | None = None,
    run_id: str | None = None,
    link: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record a notification for ``role`` and send it where configured.

    Returns the record written. Sending errors are logged, never raised: a broken
    Slack webhook must not hide the failure being reported.
    """
    role = Role(role)
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "role": role.value,
        "owner": ROLES[role].owner,
        "subject": subject,
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "error": error,
        "link": link,
        "details": details or {},
    }
    path = get_settings().notifications_file
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:  # one line per record: appends are atomic
        fh.write(json.dumps(record, default=str) + "\n")
    log.warning("notified %s: %s (%s)", role.value, subject, link or "no link")
    _send_external(role, record)
    return record


def _send_external(role: Role, record: dict[str, Any]) -> None:
    text = f"[{record['role']}] {record['subject']}\n{record['error']}\n{record['link'] or ''}"
    slack_conn = os.environ.get("TRASOS_NOTIFY_SLACK_CONN_ID")
    if slack_conn:
        try:
            from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

            SlackWebhookNotifier(slack_webhook_conn_id=slack_conn, text=text).notify({})
        except Exception:  # noqa: BLE001 - report, never mask the original failure
            log.exception("Slack notification failed")
    emails = os.environ.get(f"TRASOS_NOTIFY_EMAIL_{role.value}")
    if emails:
        try:
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            SmtpNotifier(
                to=[e.strip() for e in emails.split(",") if e.strip()],
                subject=f"[trasos {role.value}] {record['subject']}",
                html_content=f"<pre>{text}</pre>",
            ).notify({})
        except Exception:  # noqa: BLE001
            log.exception("e-mail notification failed")


def role_of_context(context: dict[str, Any]) -> Role:
    """The role that owns the task in an Airflow callback context (from its owner)."""
    task = context.get("task")
    owner = getattr(task, "owner", None)
    if owner in OWNER_TO_ROLE:
        return OWNER_TO_ROLE[owner]
    dag = context.get("dag")
    for tag in getattr(dag, "tags", None) or ():
        if tag in ROLE_TAGS:
            return Role(tag)
    return Role.DE  # the platform owner catches what nobody claims


def on_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback`` for every DAG: notify the owning role with a log link."""
    ti = context.get("ti") or context.get("task_instance")
    exc = context.get("exception")
    link = None
    try:
        link = ti.log_url if ti is not None else None
    except Exception:  # noqa: BLE001 - a missing link must not break the callback
        link = None
    details = getattr(exc, "details", None)
    # A data-quality gate names the role that owns the failing asset; else the task's owner.
    owner_role = getattr(exc, "owner_role", None)
    notify(
        Role(owner_role) if owner_role in ROLE_TAGS else role_of_context(context),
        subject=f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')} failed",
        error=f"{type(exc).__name__}: {exc}" if exc else "task failed",
        dag_id=getattr(ti, "dag_id", None),
        task_id=getattr(ti, "task_id", None),
        run_id=getattr(ti, "run_id", None),
        link=getattr(exc, "docs_url", None) or link,
        details=details if isinstance(details, dict) else None,
    )


def retry_delay() -> timedelta:
    """The delay before a failed task's retry (``TRASOS_RETRY_DELAY_SECONDS``, read at parse)."""
    seconds = os.environ.get("TRASOS_RETRY_DELAY_SECONDS")
    return timedelta(seconds=float(seconds) if seconds else RETRY_DELAY_SECONDS)


def dag_kwargs(role: Role, *, doc_md: str | None, domain: str, retries: int = 1) -> dict[str, Any]:
    """Keyword arguments every DAG of ``role`` passes to ``DAG``/``@dag``.

    Gives the one role tag plus a domain tag, the owner, retries, the failure callback,
    ``catchup=False``, the module docstring as ``doc_md``, and ``access_control``: only the
    role's own Airflow role may trigger, clear or pause the DAG (every role can see it).
    """
    if not doc_md:
        raise ValueError("every DAG needs a module docstring: it becomes the DAG's doc_md")
    info = ROLES[role]
    return {
        "tags": [role.value, domain],
        "doc_md": doc_md,
        "catchup": False,
        "access_control": access_control(role),
        "default_args": {
            "owner": info.owner,
            "retries": retries,
            "retry_delay": retry_delay(),
            "on_failure_callback": on_failure,
        },
    }
