"""Who may take a sample with raw (not pseudonymised) ids: admins only.

In a DAG run the triggering user is ``context["dag_run"].triggering_user_name`` (Airflow 3.3
sets it from the authenticated UI/API user; ``airflow dags test`` sets ``"dag_test"``, a
scheduled run None). A user is an admin when

- ``TRASOS_SAMPLE_ADMINS`` (comma-separated user names) is set and lists them, else
- the simple auth manager's users (``[core] simple_auth_manager_users``, ``name:role,...``)
  give them the role ``admin``.

``make sample --keep-raw-ids`` runs outside Airflow: it needs the same admin name in
``TRASOS_SAMPLE_USER`` (see :func:`cli_user`), checked the same way.
"""

from __future__ import annotations

import os


class NotAuthorised(PermissionError):
    """Raw ids were asked for by someone who is not an admin."""


def admin_users() -> set[str]:
    """The user names allowed to keep raw ids."""
    explicit = os.environ.get("TRASOS_SAMPLE_ADMINS")
    if explicit is not None:
        return {name.strip() for name in explicit.split(",") if name.strip()}
    users = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS")
    if users is None:
        try:
            from airflow.configuration import conf

            users = conf.get("core", "simple_auth_manager_users", fallback="")
        except Exception:  # noqa: BLE001 - no Airflow config: nobody is admin
            users = ""
    admins = set()
    for entry in (users or "").split(","):
        name, _, role = entry.strip().partition(":")
        if name and role.strip().lower() == "admin":
            admins.add(name)
    return admins


def require_admin(user: str | None, *, what: str = "keep_raw_ids") -> str:
    """Return ``user`` when it is an admin, else raise :class:`NotAuthorised` saying why."""
    admins = admin_users()
    if not user or user not in admins:
        raise NotAuthorised(
            f"{what} is for admins only; the request came from {user or 'an unknown user'!r}, "
            f"admins are {sorted(admins) or 'none configured'}. Ask an admin to trigger the "
            "sample, or take the default pseudonymised sample."
        )
    return user


def cli_user() -> str | None:
    """The user a ``make sample`` run acts for (``TRASOS_SAMPLE_USER``)."""
    return os.environ.get("TRASOS_SAMPLE_USER") or None
