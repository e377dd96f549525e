"""CLI of the recommendations API.

python -m include.serving serve [--host 127.0.0.1] [--port 8000] [--workers 1]
python -m include.serving openapi > docs/openapi.json
python -m include.serving sample [--user U0000042] [--k 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import shutil
import sys

from include.settings import get_settings


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from include.serving.app import POLL_ENV
    from include.serving.auth import load_api_keys
    from include.serving.metrics import MULTIPROC_ENV

    os.environ[POLL_ENV] = str(args.poll_interval)
    if args.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # /metrics sums the request metrics of every worker from files in this folder
        # (prometheus_client's multiprocess mode); a fresh one per start and port
        folder = get_settings().state_dir / "prometheus" / f"port-{args.port}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        os.environ[MULTIPROC_ENV] = str(folder)
    keys, source = load_api_keys()  # before the workers start: the file is created only once
    published = get_settings().published_dir
    print(
        f"recommendations API on http://{args.host}:{args.port}  (docs: /docs)\n"
        f"  serving {published}/CURRENT; {len(keys)} API key(s) from {source}",
        file=sys.stderr,
        flush=True,
    )
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)  # also in spawned workers
    log_config["loggers"]["trasos"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    uvicorn.run(
        "include.serving.app:serve_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=args.access_log,
        log_level="info",
        log_config=log_config,
    )
    return 0


def openapi(_: argparse.Namespace) -> int:
    from include.serving.app import render_openapi

    sys.stdout.write(render_openapi())
    return 0


def sample(args: argparse.Namespace) -> int:
    """One real response, in process, for ``--user`` or the first user with a personal list.

    With nothing published, the API's real answer is a 503 problem document (printed too, so
    the caller sees what the backend would get); the exit code is 0 only for a 200.
    """
    from fastapi.testclient import TestClient

    from include.serving.app import create_app
    from include.serving.auth import API_KEY_HEADER
    from include.serving.loader import model_store_from_settings

    store = model_store_from_settings()
    store.check()
    snap = store.current
    if snap is None:
        reason = store.last_error or "nothing published yet"
        print(f"no model is published in {store.published_dir}: {reason}", file=sys.stderr)
    user = args.user or (snap.first_key("user") if snap is not None else None) or "unknown-user"
    key = secrets.token_urlsafe(16)  # in-process only: the real keys are not needed
    client = TestClient(create_app(store=store, api_keys=[key], start_watcher=False))
    response = client.get(
        f"/v1/users/{user}/recommendations", params={"k": args.k}, headers={API_KEY_HEADER: key}
    )
    print(f"GET /v1/users/{user}/recommendations?k={args.k} -> {response.status_code}")
    print(json.dumps(response.json(), indent=2))
    return 0 if response.status_code == 200 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.serving", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the API with uvicorn (loopback by default)")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8000)
    p_serve.add_argument("--workers", type=int, default=1)
    p_serve.add_argument("--poll-interval", type=float, default=1.0, help="seconds")
    p_serve.add_argument("--access-log", action="store_true", help="log every request")
    p_serve.set_defaults(func=serve)
    p_openapi = sub.add_parser("openapi", help="print the OpenAPI document (docs/openapi.json)")
    p_openapi.set_defaults(func=openapi)
    p_sample = sub.add_parser("sample", help="print one real response for a known user")
    p_sample.add_argument("--user", help="default: the first user with a personal list")
    p_sample.add_argument("--k", type=int, default=5)
    p_sample.set_defaults(func=sample)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
