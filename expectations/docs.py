"""GX Data Docs made to work offline (the one-page overview is :mod:`expectations.overview`).

GX renders Data Docs that load bootstrap, jquery, bootstrap-table, font-awesome and vega from
public CDNs; without internet the index shows an empty list and pages render unstyled. So:

1. The files the pages use (minified CSS/JS, woff2 fonts, each package's licence) are committed
   under ``expectations/static/vendor/``; ``expectations/static/vendor.json`` lists their
   packages, versions and licences and maps each CDN URL to its local copy.
2. After every Data Docs build, :func:`localize_site` copies them to
   ``<reports_dir>/data_docs/static/vendor/`` and rewrites every CDN URL in the generated HTML
   (and GX's CSS) to a relative local path, dropping ``integrity``/``crossorigin`` attributes
   (file:// pages cannot pass CORS checks); a relative link into the site's ``static/``
   folder that misses it (GX's favicon link on validation pages) is set to the right depth.
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
from pathlib import Path
from typing import Any

from common.fs import atomic_dir, atomic_write_text
from include.settings import get_settings

log = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).resolve().parent / "static" / "vendor.json"
VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor"
STAMP_NAME = ".vendor-manifest.sha256"

_GX_ASSETS_HOST = re.compile(
    r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/([A-Za-z0-9_.-]+)[^\"')\s]*"
)
_URL_ATTR = re.compile(r"""(?P<attr>src|href)=(?P<q>["'])(?P<url>https?://[^"']+)(?P=q)""")
_STATIC_REF = re.compile(
    r"""(?P<attr>src|href)=(?P<q>["'])(?P<url>(?:\.\./|\./)*static/(?P<rest>[^"'?#]+))(?P=q)"""
)
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
    """The committed front-end files: ``expectations/static/vendor/<package>/`` (see
    ``vendor.json`` for versions and licences; no download at setup or run time)."""
    return VENDOR_DIR


def missing_vendor_files(source: Path | None = None) -> list[str]:
    """Files of the manifest (and each package's licence) absent from ``source``."""
    source = source or vendor_source_dir()
    missing = []
    for name, pkg in load_manifest()["packages"].items():
        folder = source / name
        missing += [f"{name}/{f}" for f in pkg["files"] if not (folder / f).is_file()]
        if not any(folder.glob("LICENSE*")):
            missing.append(f"{name}/LICENSE")
    return missing


def vendor_available(source: Path | None = None) -> bool:
    return not missing_vendor_files(source)


def publish_vendor_assets(docs_dir: Path) -> bool:
    """Copy the vendor files into ``<docs_dir>/static/vendor`` (once per manifest version;
    the folder is swapped in whole, so a page never sees half of it).

    Returns False (and logs what is missing) when the checkout lacks them: the pages then make
    no network request either, they just render without styles and scripts.
    """
    source = vendor_source_dir()
    target = docs_dir / "static" / "vendor"
    missing = missing_vendor_files(source)
    if missing:
        log.warning(
            "Data Docs front-end files are missing in %s (%s): pages will render unstyled. "
            "Restore them from git (`git checkout -- expectations/static/vendor`).",
            source,
            ", ".join(missing[:5]),
        )
        return False
    stamp = _manifest_digest() + "\n"
    if (target / STAMP_NAME).is_file() and (target / STAMP_NAME).read_text() == stamp:
        return True
    with atomic_dir(target) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        (staging / STAMP_NAME).write_text(stamp)
    return True


# --- rewriting the generated site ------------------------------------------------------------
def _relative(target: Path, from_dir: Path) -> str:
    return Path(os.path.relpath(target, from_dir)).as_posix()


def localize_file(path: Path, docs_dir: Path, urls: dict[str, str]) -> bool:
    """Point CDN references of one HTML/CSS file to the local vendor copies, and relative
    references to the site's ``static/`` folder that miss it to the right depth (GX links
    the favicon of validation pages one ``../`` short). True if changed."""
    text = path.read_text(encoding="utf-8")
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

    def static_ref(match: re.Match[str]) -> str:
        if (here / match.group("url")).exists():
            return match.group(0)
        local = docs_dir / "static" / match.group("rest")
        if not local.exists():
            return match.group(0)
        q = match.group("q")
        return f"{match.group('attr')}={q}{_relative(local, here)}{q}"

    new = _GX_ASSETS_HOST.sub(gx_image, text)
    new = _URL_ATTR.sub(attr, new)
    new = _STATIC_REF.sub(static_ref, new)
    if new != text:
        new = _SRI_ATTRS.sub("", new)
        atomic_write_text(path, new)
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
    sub.add_parser("vendor", help="check the committed Data Docs front-end files")
    sub.add_parser("localize", help="rewrite an existing Data Docs site for offline use")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "vendor":
        missing = missing_vendor_files()
        print(f"{vendor_source_dir()}: " + (f"missing {missing}" if missing else "complete"))
        return 1 if missing else 0
    elif args.command == "build":
        from expectations.gate import rebuild_data_docs

        left = rebuild_data_docs()
        print(f"{get_settings().reports_dir / 'data_docs'}: {len(left)} external loads left")
    else:
        docs_dir = get_settings().reports_dir / "data_docs"
        left = localize_site(docs_dir)
        print(f"{docs_dir}: {len(left)} external loads left")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
