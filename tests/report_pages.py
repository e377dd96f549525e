"""Browser check of every HTML report page the platform writes (a helper, not a test file).

:func:`check_report_pages` opens each page under a reports directory in headless Chromium,
saves a full-page screenshot and returns what a reader would trip over:

- a console error or an uncaught script error;
- a failed local request (``file://`` or loopback), a load from the network (the pages must
  work offline), or a local resource the page references that does not exist (a favicon
  included: Chromium does not always fetch it, so the reference is checked on disk) and a
  local link to a page that does not exist;
- ``NaN``, ``nan``, ``None``, ``null`` or ``undefined`` in the visible text;
- a count printed as a float: ``2,897.0`` anywhere, and any decimal (``1.0000``) in a table
  column (or row) whose header names a count (users, items, rows, epochs, ...);
- a page wider than the window (it scrolls sideways at 1,280 px).

The pages are found by walking the directory, so a new report is covered without editing
this file. Series of pages of one template are sampled: of GX's validation result pages,
the newest per suite (a site keeps up to 30 per suite). :func:`render_on_demand_pages`
writes the pages made by hand rather than by the DAGs (``make owners``, ``make dbt-docs``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

#: Pages every run of the whole chain writes (relative to the reports directory).
CHAIN_PAGES = (
    "data_quality.html",
    "data_docs/index.html",
    "evaluation/latest.html",
    "business/index.html",
    "monitoring/index.html",
)
#: Pages written by hand (``make owners``, ``make dbt-docs``): :func:`render_on_demand_pages`.
ON_DEMAND_PAGES = ("owners.html", "dbt_docs/index.html")
VIEWPORT = {"width": 1280, "height": 900}

_MISSING_WORD = re.compile(r"(?<![\w.-])(NaN|nan|None|null|undefined)(?![\w-])")
#: ... in prose, not a value: "must never be null", "100% not null", "None of the ..."
_PROSE = re.compile(
    r"\b(?:be|not|non|is|are|no)[\s-]+null\b|\bnull\s+(?:values?|rows?)\b|\bNone\s+of\b"
)
#: 2,897.0: a count with a float's tail (a measured quantity past 1,000 needs no ".0")
_FLOAT_COUNT = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+\.0(?![\d])")
#: A table header (or row header) naming a count: its cells must be whole numbers ("1.0000"
#: epochs, "2,897.0" users). Statistics of counts (median days, revenue / session) are not.
_COUNT_HEADER = re.compile(
    r"^(?!.*(?:/|%|\bper\b|\bmedian\b|\bmean\b|\bavg\b|\baverage\b|\brate\b|\bshare\b))"
    r"(?:.*\b(?:n_\w+|users?|items?|rows?|events?|sessions?|epochs?|counts?|visitors?|customers?"
    r"|purchases|orders|expectations|alerts|versions|runs)\b|#.*|number of .*|n\b.*)$",
    re.IGNORECASE,
)
#: <link> relations that make the browser load the target (canonical, alternate: they do not)
_LOADED_LINKS = ("stylesheet", "icon", "shortcut icon", "preload", "manifest", "modulepreload")
_DECIMAL = re.compile(r"^-?[\d,]*\.\d+$")

# Collected in the page: local references (resources and links) and table cells under (or
# beside) a header naming a count.
_PAGE_FACTS_JS = """
([countHeader, loadedLinks]) => {
  const re = new RegExp(countHeader, "i");
  const refs = [];
  const add = (kind, el, attr) => {
    const raw = el.getAttribute(attr);
    if (!raw || raw.startsWith("#") || raw.startsWith("javascript:")) return;
    refs.push([kind, el.tagName.toLowerCase(), raw, new URL(raw, document.baseURI).href]);
  };
  document.querySelectorAll("link[href]").forEach(el => {
    if (loadedLinks.includes((el.getAttribute("rel") || "").toLowerCase())) add("resource", el, "href");
  });
  document.querySelectorAll("script[src], img[src], iframe[src], source[src], embed[src]")
    .forEach(el => add("resource", el, "src"));
  document.querySelectorAll("a[href]").forEach(el => add("link", el, "href"));
  const cells = [];
  const visible = el => el.offsetParent !== null || el.getClientRects().length > 0;
  document.querySelectorAll("table").forEach(table => {
    if (!visible(table)) return;
    const head = table.tHead ? table.tHead.rows[table.tHead.rows.length - 1] : null;
    const names = head ? Array.from(head.cells).map(c => c.innerText.trim()) : [];
    const body = Array.from(table.tBodies).flatMap(b => Array.from(b.rows));
    body.forEach(row => {
      const rowHead = row.cells.length && row.cells[0].tagName === "TH"
        ? row.cells[0].innerText.trim() : "";
      Array.from(row.cells).forEach((cell, i) => {
        if (cell.tagName === "TH") return;
        const col = names[i] || "";
        const label = re.test(col) ? col : (re.test(rowHead) ? rowHead : "");
        if (label) cells.push([label, cell.innerText.trim()]);
      });
    });
  });
  const doc = document.documentElement;
  return {refs, cells, scrollWidth: Math.max(doc.scrollWidth, document.body.scrollWidth)};
}
"""


@dataclass
class PageReport:
    page: str
    screenshot: Path
    problems: list[str] = field(default_factory=list)


def report_pages(reports_dir: Path) -> list[Path]:
    """Every HTML page under ``reports_dir`` worth opening, sorted.

    Of GX's validation result pages (``data_docs/validations/<suite>/<run>/<time>/*.html``)
    only the newest of each suite: they share one template and the site keeps many.
    """
    reports_dir = reports_dir.resolve()
    newest: dict[str, Path] = {}
    pages = []
    for path in sorted(reports_dir.rglob("*.html")):
        rel = path.relative_to(reports_dir).parts
        if "static" in rel:  # vendored front-end files, not pages
            continue
        if rel[:2] == ("data_docs", "validations") and len(rel) > 3:
            suite = rel[2]  # the page's folder is the run time: 20261206T202028.970401Z
            if suite not in newest or path.parent.name > newest[suite].parent.name:
                newest[suite] = path
            continue
        pages.append(path)
    return sorted([*pages, *newest.values()])


def render_on_demand_pages(data_dir: Path) -> list[tuple[subprocess.Popen, Any]]:
    """Write the pages made by hand, as ``make owners`` and ``make dbt-docs`` do, in two
    background processes; returns each with the file holding its stderr. dbt docs read the
    warehouse: a monitor still storing its checks holds it for a moment, so they are tried
    three times."""
    env = {**os.environ, "TRASOS_DATA_DIR": str(data_dir)}
    env.pop("TRASOS_WAREHOUSE", None)
    docs = f"{sys.executable} -m include.transform docs"
    commands = (
        [sys.executable, "-m", "include.tasks.owners"],
        ["bash", "-c", f"for i in 1 2 3; do {docs} && exit 0; sleep 5; done; exit 1"],
    )
    started = []
    for command in commands:
        # stderr to a file, not a pipe: Airflow's warnings while parsing the DAGs would fill
        # a pipe nobody reads before wait() and block the process
        err = tempfile.TemporaryFile("w+")
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
        started.append((proc, err))
    return started


def _local_path(url: str) -> Path | None:
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def _is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("file", "data", "blob", "about") or parsed.hostname in (
        "127.0.0.1",
        "localhost",
    )


def text_problems(text: str) -> list[str]:
    """Missing values and counts printed as floats in a page's visible text."""
    prose = [m.span() for m in _PROSE.finditer(text)]
    problems = []
    for pattern, what in ((_MISSING_WORD, "a missing value"), (_FLOAT_COUNT, "a float count")):
        for match in pattern.finditer(text):
            if pattern is _MISSING_WORD and any(a <= match.start() < b for a, b in prose):
                continue
            start, end = max(match.start() - 40, 0), min(match.end() + 40, len(text))
            context = " ".join(text[start:end].split())
            problems.append(f"{what} {match.group(0)!r} in the text: ...{context}...")
    return problems


class _Browser:
    """One tab for every page; its listeners add to the problems of the page being checked."""

    def __init__(self, context: Any) -> None:
        self.problems: list[str] = []
        self.page = page = context.new_page()
        page.set_viewport_size(VIEWPORT)
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"script error: {str(e)[:300]}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text[:300]}")

    def _failed(self, request: Any) -> None:
        where = "local" if _is_local(request.url) else "network"
        self.problems.append(f"failed {where} request {request.url}: {request.failure}")

    def _response(self, response: Any) -> None:
        if not _is_local(response.url):
            self.problems.append(f"load from the network: {response.url}")
        elif response.status >= 400:
            self.problems.append(f"{response.status} for {response.url}")

    def check(self, path: Path, shots: Path, reports_dir: Path) -> PageReport:
        """Open one page; screenshot it into ``shots``; return its problems."""
        rel = path.relative_to(reports_dir).as_posix()
        parts = rel.removesuffix(".html").split("/")
        if parts[:2] == ["data_docs", "validations"]:  # the newest of a suite: named by it
            parts = parts[:3]
        shot = shots / ("__".join(parts) + ".png")
        self.problems = problems = []
        page = self.page
        page.goto(path.as_uri(), wait_until="load", timeout=60_000)
        # fonts loaded and one frame drawn (scripts that draw charts run on load)
        page.evaluate("document.fonts.ready.then(() => new Promise(requestAnimationFrame))")
        facts = page.evaluate(_PAGE_FACTS_JS, [_COUNT_HEADER.pattern, list(_LOADED_LINKS)])
        problems += text_problems(page.inner_text("body"))
        page.screenshot(path=shot, full_page=True)
        page.goto("about:blank")  # late events of this page stay with this page
        seen = set()
        for kind, tag, raw, url in facts["refs"]:
            local = _local_path(url)
            if local is None or url in seen:
                continue
            seen.add(url)
            if not local.exists():
                what = "links to" if kind == "link" else f"<{tag}> loads"
                problems.append(f"{what} a missing file {raw!r} ({local})")
        for label, value in facts["cells"]:
            if _DECIMAL.match(value):
                problems.append(f"a count with decimals under {label!r}: {value}")
        if facts["scrollWidth"] > VIEWPORT["width"]:
            problems.append(
                f"the page is {facts['scrollWidth']:,} px wide: it scrolls sideways at "
                f"{VIEWPORT['width']:,} px"
            )
        return PageReport(rel, shot, list(dict.fromkeys(problems)))


def check_report_pages(
    context: Any,
    reports_dir: Path,
    shots: Path,
    expected: tuple[str, ...] = CHAIN_PAGES,
    on_demand_from: Path | None = None,
) -> list[PageReport]:
    """Check every page of :func:`report_pages` in the Playwright browser ``context``;
    screenshots go to ``shots``. Raises AssertionError listing each page's problems, or
    when a page of ``expected`` is missing; returns the per-page reports.

    ``on_demand_from``: a data directory whose pages made by hand (:data:`ON_DEMAND_PAGES`)
    are written first (in the background, while the others are checked) and expected too.
    """
    shots.mkdir(parents=True, exist_ok=True)
    for old in shots.glob("*.png"):  # a page gone since the last run leaves no picture
        old.unlink()
    reports_dir = reports_dir.resolve()
    making = render_on_demand_pages(on_demand_from) if on_demand_from else []
    lines: list[str] = []
    tab = _Browser(context)
    try:
        pages = report_pages(reports_dir)
        reports = [tab.check(p, shots, reports_dir) for p in pages]
        for proc, err in making:
            if proc.wait(timeout=600) != 0:
                err.seek(0)
                lines.append(f"{' '.join(proc.args)} failed: {err.read()[-2000:]}")
        if making:
            expected = (*expected, *ON_DEMAND_PAGES)
            done = set(pages)
            pages = report_pages(reports_dir)
            reports += [tab.check(p, shots, reports_dir) for p in pages if p not in done]
    finally:
        tab.page.close()
        for proc, err in making:
            proc.kill()
            err.close()
    found = {p.relative_to(reports_dir).as_posix() for p in pages}
    lines += [f"{name}: expected but not written" for name in expected if name not in found]
    for r in reports:
        lines += [f"{r.page}: {problem}" for problem in r.problems]
    assert not lines, f"{len(lines)} problem(s) in the reports under {reports_dir} " + (
        f"(screenshots in {shots}):\n" + "\n".join(lines)
    )
    return reports
