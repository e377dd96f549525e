"""GX Data Docs made to work offline (the one-page overview is :mod:`expectations.overview`).

GX renders Data Docs that load bootstrap, jquery, bootstrap-table, font-awesome and vega from
public CDNs; without internet the index shows an empty list and pages render unstyled. So:

1. ``python -m expectations.docs vendor`` (run once by ``make setup``) fetches the pinned npm
   packages listed in ``expectations/static/vendor.json`` with ``npm pack`` and keeps only the
   files the pages use, under ``$TRASOS_DOCS_VENDOR_DIR`` (default ``<repo>/.state/docs_vendor``).
2. After every Data Docs build, :func:`localize_site` copies them to
   ``<reports_dir>/data_docs/static/vendor/`` and rewrites every CDN URL in the generated HTML
   (and GX's CSS) to a relative local path, dropping ``integrity``/``crossorigin`` attributes
   (file:// pages cannot pass CORS checks).
3. The one-page overview of the latest gate results is :mod:`expectations.overview`.

This module imports neither the gate nor the overview (rebuilding the site from stored
results is ``python -m expectations.gate build``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from include.settings import REPO_ROOT, get_settings

log = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).resolve().parent / "static" / "vendor.json"
STAMP_NAME = ".vendor-manifest.sha256"

_GX_ASSETS_HOST = re.compile(
    r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/([A-Za-z0-9_.-]+)[^\"')\s]*"
)
_URL_ATTR = re.compile(r"""(?P<attr>src|href)=(?P<q>["'])(?P<url>https?://[^"']+)(?P=q)""")
_SRI_ATTRS = re.compile(r"""\s+(?:integrity|crossorigin)=(["'])[^"']*\1""")
# Resources a browser fetches while rendering (navigation links <a href> are not loads).
_EXTERNAL_LOAD = re.compile(
    r"""<(?:script|img|iframe)\b[^>]*\ssrc=["']https?://[^"']+|<link\b[^>]*\shref=["']https?://[^"']+"""
    r"""|url\(\s*["']?https?://|@import\s+["']?(?:url\()?\s*["']?https?://""",
    re.IGNORECASE,
)


# --- vendor assets ---------------------------------------------------------------------------
def load_manifest() -> dict[str, Any]:
    return json.loads(MANIFEST_PATH.read_text())


def _manifest_digest() -> str:
    return hashlib.sha256(MANIFEST_PATH.read_bytes()).hexdigest()


def vendor_source_dir() -> Path:
    """Where ``vendor`` puts the front-end files: ``$TRASOS_DOCS_VENDOR_DIR``, else
    ``<repo>/.state/docs_vendor``. Like the venv it belongs to the checkout, not to a state
    directory (tests and runs point ``TRASOS_STATE_DIR`` at throw-away folders)."""
    env = os.environ.get("TRASOS_DOCS_VENDOR_DIR")
    return Path(env) if env else REPO_ROOT / ".state" / "docs_vendor"


def vendor_available(source: Path | None = None) -> bool:
    source = source or vendor_source_dir()
    stamp = source / STAMP_NAME
    return stamp.is_file() and stamp.read_text().strip() == _manifest_digest()


def install_vendor_assets(dest: Path | None = None, *, force: bool = False) -> Path:
    """Fetch the pinned npm packages of the manifest and keep the listed files in ``dest``.

    Uses ``npm pack`` (downloads each package tarball only; nothing is installed and no
    dependency is resolved). Idempotent: does nothing when ``dest`` matches the manifest.
    """
    dest = dest or vendor_source_dir()
    if not force and vendor_available(dest):
        log.info("Data Docs vendor files already in %s", dest)
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            "npm is needed once to fetch the Data Docs front-end files (bootstrap, jquery, ...); "
            "install Node.js/npm (apt-get install -y npm) and re-run "
            "`python -m expectations.docs vendor`"
        )
    manifest = load_manifest()
    tmp_root = dest.parent
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root, prefix=".docs_vendor-") as tmp:
        tmp_path = Path(tmp)
        packs = tmp_path / "packs"
        staging = tmp_path / "vendor"
        packs.mkdir()
        staging.mkdir()
        specs = [pkg["npm"] for pkg in manifest["packages"].values()]
        proc = subprocess.run(
            [npm, "pack", "--silent", "--json", "--pack-destination", str(packs), *specs],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"npm pack failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"
            )
        tarballs = {entry["id"]: packs / entry["filename"] for entry in json.loads(proc.stdout)}
        for name, pkg in manifest["packages"].items():
            tarball = tarballs.get(pkg["npm"])
            if tarball is None:
                raise RuntimeError(f"npm pack did not return {pkg['npm']}: got {sorted(tarballs)}")
            _extract_files(tarball, staging / name, pkg["files"])
        (staging / STAMP_NAME).write_text(_manifest_digest() + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    log.info("Data Docs vendor files installed in %s", dest)
    return dest


def _extract_files(tarball: Path, out_dir: Path, wanted: list[str]) -> None:
    """Extract ``wanted`` paths (files, or folders ending in '/') and LICENSE* from an npm pack."""
    out_dir.mkdir(parents=True, exist_ok=True)
    found: set[str] = set()
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            rel = member.name.split("/", 1)[1] if "/" in member.name else member.name
            match = next(
                (w for w in wanted if rel == w or (w.endswith("/") and rel.startswith(w))), None
            )
            is_licence = "/" not in rel and rel.upper().startswith(("LICENSE", "LICENCE"))
            if match is None and not is_licence:
                continue
            target = out_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
            if match:
                found.add(match)
    missing = set(wanted) - found
    if missing:
        raise RuntimeError(f"{tarball.name} lacks {sorted(missing)}: update vendor.json")


def publish_vendor_assets(docs_dir: Path) -> bool:
    """Copy the vendor files into ``<docs_dir>/static/vendor`` (once per manifest version).

    Returns False (and logs how to fix it) when they were never fetched: the pages then make
    no network request either, they just render without styles and scripts.
    """
    source = vendor_source_dir()
    target = docs_dir / "static" / "vendor"
    if not vendor_available(source):
        log.warning(
            "Data Docs front-end files are missing in %s: pages will render unstyled offline. "
            "Run `python -m expectations.docs vendor` (part of `make setup`).",
            source,
        )
        return False
    if (target / STAMP_NAME).is_file() and (target / STAMP_NAME).read_text() == (
        source / STAMP_NAME
    ).read_text():
        return True
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return True


# --- rewriting the generated site ------------------------------------------------------------
def _relative(target: Path, from_dir: Path) -> str:
    return Path(os.path.relpath(target, from_dir)).as_posix()


def localize_file(path: Path, docs_dir: Path, urls: dict[str, str]) -> bool:
    """Point CDN references of one HTML/CSS file to the local vendor copies. True if changed."""
    text = path.read_text(encoding="utf-8")
    if "http" not in text:
        return False
    vendor = docs_dir / "static" / "vendor"
    images = docs_dir / "static" / "images"
    here = path.parent

    def gx_image(match: re.Match[str]) -> str:
        name = match.group(1)
        local = images / name if (images / name).is_file() else images / "logo-long.png"
        return _relative(local, here)

    def attr(match: re.Match[str]) -> str:
        local = urls.get(match.group("url"))
        if local is None:
            return match.group(0)
        q = match.group("q")
        return f"{match.group('attr')}={q}{_relative(vendor / local, here)}{q}"

    new = _GX_ASSETS_HOST.sub(gx_image, text)
    new = _URL_ATTR.sub(attr, new)
    if new != text:
        new = _SRI_ATTRS.sub("", new)
        path.write_text(new, encoding="utf-8")
        return True
    return False


def external_loads(text: str) -> list[str]:
    """Snippets of ``text`` that would make a browser fetch something from the network."""
    return [m.group(0) for m in _EXTERNAL_LOAD.finditer(text)]


def localize_site(docs_dir: Path) -> list[str]:
    """Make the Data Docs site under ``docs_dir`` render offline.

    Returns the external loads that remain (empty when the site is self-contained); they are
    logged as warnings too, so a GX upgrade that adds a CDN reference gets noticed.
    """
    publish_vendor_assets(docs_dir)
    urls = load_manifest()["urls"]
    remaining: list[str] = []
    files = [*docs_dir.rglob("*.html"), *(docs_dir / "static" / "styles").glob("*.css")]
    for path in files:
        localize_file(path, docs_dir, urls)
        left = external_loads(path.read_text(encoding="utf-8"))
        remaining += [f"{path.relative_to(docs_dir)}: {snippet}" for snippet in left]
    if remaining:
        log.warning("Data Docs still reference the network: %s", "; ".join(remaining[:5]))
    return remaining


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m expectations.docs", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    vendor = sub.add_parser("vendor", help="fetch the Data Docs front-end files (npm pack)")
    vendor.add_argument("--dest", type=Path, default=None)
    vendor.add_argument("--force", action="store_true")
    sub.add_parser("localize", help="rewrite an existing Data Docs site for offline use")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "vendor":
        print(install_vendor_assets(args.dest, force=args.force))
    else:
        docs_dir = get_settings().reports_dir / "data_docs"
        left = localize_site(docs_dir)
        print(f"{docs_dir}: {len(left)} external loads left")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
