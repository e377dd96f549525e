"""The browser check of the report pages (tests/report_pages.py) finds what it claims to.

The end-to-end test runs it on the pages of a real day one and day two; here it runs on two
hand-written pages, one clean and one with every defect it looks for.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from report_pages import check_report_pages, report_pages, text_problems

CLEAN = """<!doctype html><html><head><meta charset="utf-8"><title>ok</title>
<link rel="icon" href="data:,"><link rel="canonical" href="/overview/"></head><body>
<p>2,897 users; none of the rows is null. Values must never be null; 100% not null.</p>
<table><thead><tr><th>model</th><th>n_users</th><th>epochs</th><th>median days to return</th>
<th>revenue / session</th><th>coverage@20</th></tr></thead>
<tbody><tr><td>lightfm</td><td>2,897</td><td>12</td><td>6.0</td><td>12.52</td><td>1.0000</td></tr>
</tbody></table>
<table><tbody><tr><th>Evaluated Expectations</th><td>42</td></tr></tbody></table>
<a href="sub/other.html">the other page</a> <a href="https://example.org/">outside</a>
</body></html>"""

BROKEN = """<!doctype html><html><head><meta charset="utf-8"><title>broken</title>
<link rel="shortcut icon" href="../static/images/favicon.ico"></head><body>
<p>Data asset: None. Recall NaN, lift nan, owner null, model undefined.</p>
<p>2,897.0 users were evaluated.</p>
<table><thead><tr><th>epoch</th><th>validation ndcg</th></tr></thead>
<tbody><tr><td>1.0000</td><td>0.1234</td></tr></tbody></table>
<img src="missing.png" alt="chart">
<a href="v2.html">the served version</a>
<div style="width: 2000px">wide</div>
<script>console.error("boom"); undefinedFunction();</script>
</body></html>"""


def test_text_problems_tell_values_from_prose() -> None:
    assert text_problems("must never be null; 100% not null; None of them; 1.0000; 12.0") == []
    found = text_problems("Data asset: None | NaN | nan | null | undefined | 2,897.0 users")
    assert [p.split(" in the text")[0] for p in found] == [
        "a missing value 'None'",
        "a missing value 'NaN'",
        "a missing value 'nan'",
        "a missing value 'null'",
        "a missing value 'undefined'",
        "a float count '2,897.0'",
    ]


def test_pages_are_found_and_validation_pages_sampled(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    for rel in (
        "a.html",
        "evaluation/latest.html",
        "evaluation/v1.html",
        "data_docs/index.html",
        "data_docs/static/vendor/x/demo.html",
        "data_docs/validations/raw_events/run1/20260101T000000.000000Z/p.html",
        "data_docs/validations/raw_events/run2/20260102T000000.000000Z/p.html",
        "data_docs/validations/sessions/run1/20260101T000000.000000Z/p.html",
    ):
        (reports / rel).parent.mkdir(parents=True, exist_ok=True)
        (reports / rel).write_text("<html></html>")
    assert [p.relative_to(reports).as_posix() for p in report_pages(reports)] == [
        "a.html",
        "data_docs/index.html",
        "data_docs/validations/raw_events/run2/20260102T000000.000000Z/p.html",
        "data_docs/validations/sessions/run1/20260101T000000.000000Z/p.html",
        "evaluation/latest.html",
        "evaluation/v1.html",
    ]


@pytest.mark.integration
def test_the_check_passes_a_clean_page_and_names_each_defect(tmp_path: Path, chromium) -> None:
    reports = tmp_path / "reports"
    (reports / "sub").mkdir(parents=True)
    (reports / "clean.html").write_text(CLEAN)
    (reports / "sub" / "other.html").write_text(CLEAN.replace("sub/other.html", "../clean.html"))
    shots = tmp_path / "shots"
    context = chromium()
    pages = check_report_pages(context, reports, shots, expected=("clean.html",))
    assert [p.page for p in pages] == ["clean.html", "sub/other.html"]
    assert all(p.screenshot.stat().st_size > 1_000 for p in pages)

    (reports / "sub" / "broken.html").write_text(BROKEN)
    with pytest.raises(AssertionError) as info:
        check_report_pages(context, reports, shots, expected=("clean.html", "missing.html"))
    lines = str(info.value).splitlines()[1:]
    assert "missing.html: expected but not written" in lines
    broken = [line.removeprefix("sub/broken.html: ") for line in lines if "broken" in line]
    for expected in (
        "console error: boom",
        "script error: undefinedFunction is not defined",
        "a missing value 'None' in the text",
        "a missing value 'NaN' in the text",
        "a missing value 'nan' in the text",
        "a missing value 'null' in the text",
        "a missing value 'undefined' in the text",
        "a float count '2,897.0' in the text",
        "a count with decimals under 'epoch': 1.0000",
        "<link> loads a missing file '../static/images/favicon.ico'",
        "<img> loads a missing file 'missing.png'",
        "links to a missing file 'v2.html'",
        "the page is 2,",
        "failed local request",
    ):
        assert any(line.startswith(expected) for line in broken), (expected, broken)
    assert not [line for line in lines if line.startswith(("clean.html", "sub/other.html"))]
    assert (shots / "sub__broken.png").is_file()
