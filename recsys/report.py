"""Self-contained evaluation report (one HTML file, charts inlined as base64 PNG, no internet)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys import columns as C

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1f24}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right}
th{background:#f6f8fa}td.l,th.l{text-align:left}
.pass{background:#dafbe1}.fail{background:#ffebe9}.skipped{background:#fff8c5}
.cand{font-weight:600}.muted{color:#57606a;font-size:12px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;color:#fff}
.badge.pass{background:#1a7f37}.badge.fail{background:#cf222e}
img{max-width:100%}
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _bar_chart(table: pd.DataFrame, metric: str, candidate: str) -> str | None:
    from matplotlib.figure import Figure

    if metric not in table.columns:
        return None
    pivot = table.pivot(index=C.MODEL, columns=C.SEGMENT, values=metric)
    pivot = pivot.reindex(columns=[s for s in C.SEGMENTS if s in pivot.columns])
    pivot = pivot.loc[table[C.MODEL].drop_duplicates()]
    fig = Figure(figsize=(8, 3.6))
    ax = fig.subplots()
    width = 0.8 / max(len(pivot.columns), 1)
    x = np.arange(len(pivot))
    for j, seg in enumerate(pivot.columns):
        ax.bar(x + j * width, pivot[seg].fillna(0).to_numpy(), width, label=seg)
    ax.set_xticks(x + width * (len(pivot.columns) - 1) / 2)
    ax.set_xticklabels(
        [f"*{m}*" if m == candidate else m for m in pivot.index], rotation=20, ha="right"
    )
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by model and item segment (cold = launched after T)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _curve_chart(curve: list[dict], best_epoch: int | None) -> str | None:
    from matplotlib.figure import Figure

    if not curve:
        return None
    frame = pd.DataFrame(curve)
    metric = next(c for c in frame.columns if c.startswith("validation_"))
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    ax.plot(frame["epoch"], frame[metric], marker="o")
    if best_epoch:
        ax.axvline(best_epoch, color="tab:green", ls="--", label=f"best epoch {best_epoch}")
        ax.legend(fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title("LightFM learning curve on the validation slice")
    ax.grid(alpha=0.3)
    return _png(fig)


def _blend_chart(search: list[dict]) -> str | None:
    from matplotlib.figure import Figure

    if not search:
        return None
    frame = pd.DataFrame(search)
    metric = next(c for c in frame.columns if c.startswith("validation_"))
    if "als_weight" not in frame.columns:
        frame["als_weight"] = 0.0
    panels = sorted(frame["als_weight"].unique())
    fig = Figure(figsize=(4.2 * len(panels), 3.2))
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    for ax, a in zip(axes, panels, strict=True):
        for lam, g in frame[frame["als_weight"] == a].groupby("self_weight"):
            ax.plot(g["weight"], g[metric], marker="o", label=f"self_weight {lam:g}")
        ax.set_xlabel("co-occurrence weight w")
        ax.set_title(f"ALS share of factors {a:g}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric)
    axes[0].legend(fontsize=7)
    fig.suptitle("Blend weight search on the validation slice", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        if np.isnan(v):
            return "–"
        return f"{v:.4f}" if abs(v) < 100 else f"{v:,.1f}"
    return html.escape(str(v))


def _table(frame: pd.DataFrame, row_class=None, left: tuple[str, ...] = ()) -> str:
    head = "".join(
        f'<th class="{"l" if c in left else ""}">{html.escape(str(c))}</th>' for c in frame.columns
    )
    body = []
    for _, row in frame.iterrows():
        cls = row_class(row) if row_class else ""
        cells = "".join(
            f'<td class="{"l" if c in left else ""}">{_fmt(row[c])}</td>' for c in frame.columns
        )
        body.append(f'<tr class="{cls}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_report(
    metrics: pd.DataFrame,
    dod: dict,
    *,
    title: str = "Trasos recommender: evaluation report",
    learning_curve: list[dict] | None = None,
    best_epoch: int | None = None,
    blend_search: list[dict] | None = None,
    snapshot: dict | None = None,
    timings: dict | None = None,
    version: str | None = None,
) -> str:
    """The report as one HTML string.

    Parameters
    ----------
    metrics
        Evaluation table (:func:`recsys.evaluate.evaluate_models`).
    dod
        ``DoDReport.to_dict()``.
    """
    candidate = dod.get("candidate", "")
    passed = dod.get("passed", False)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Candidate <b>{html.escape(candidate)}</b>"
        + (f", version <code>{html.escape(version)}</code>" if version else "")
        + f" &nbsp; <span class='badge {'pass' if passed else 'fail'}'>definition of done "
        f"{'PASSED' if passed else 'FAILED'}</span></p>",
    ]
    pub = dod.get("publication")
    if pub:  # what this run publishes, and the reports of the served and the latest version
        served = pub.get("served_version")
        links = [f"<a href='{html.escape(v)}.html'>{html.escape(label)}</a>"
                 for label, v in (("served version's report", served),
                                  ("this attempt's report", version)) if v]  # fmt: skip
        parts.append(
            f"<p>Publication: <b>kind: {html.escape(str(pub.get('kind')))}</b>"
            f" ({html.escape(str(pub.get('model') or 'nothing'))}): "
            f"{html.escape(str(pub.get('reason', '')))}. {' · '.join(links)}</p>"
        )
    if snapshot:
        parts.append("<h2>Data</h2>")
        snap = pd.DataFrame({"fact": list(snapshot), "value": [str(v) for v in snapshot.values()]})
        parts.append(_table(snap, left=("fact", "value")))
    parts.append("<h2>Definition of done</h2>")
    considered = pd.DataFrame(dod.get("considered", []))
    if len(considered) > 1:
        considered["failed"] = considered["failed"].map(", ".join)
        parts.append(
            "<p>Every candidate is gated by the same clauses; the best one that passes "
            "(highest nDCG@10) is the one saved and published. The clauses below are "
            f"<b>{html.escape(candidate)}</b>'s.</p>"
        )
        parts.append(
            _table(
                considered[["candidate", "passed", "ndcg_at_10", "failed"]],
                row_class=lambda r: "pass" if r["passed"] else "fail",
                left=("candidate", "passed", "failed"),
            )
        )
    clauses = pd.DataFrame(dod.get("clauses", []))
    if not clauses.empty:
        cols = ["id", "status", "observed", "required", "ratio", "ci_low", "ci_high", "rule"]
        cols = [c for c in cols if c in clauses.columns] + ["margin_pct", "owner", "detail"]
        parts.append(
            _table(
                clauses[cols],
                row_class=lambda r: r["status"],
                left=("id", "status", "owner", "detail"),
            )
        )
        parts.append(
            "<p class='muted'>ratio = candidate / reference with its 95 % paired bootstrap "
            "interval [ci_low, ci_high] over test users. <b>better</b>: passes when the ratio "
            "reaches the factor and ci_low &gt; 1; <b>no_worse</b>: fails only when ci_high is "
            "below the factor; <b>threshold</b>/<b>point</b>: the point value decides. "
            "margin_pct = (observed − required) / required for ≥ clauses.</p>"
        )
    parts.append("<h2>Metrics against every baseline (time split)</h2>")
    parts.append(
        "<p class='muted'>Segments: <b>all</b> items on sale in the test window, <b>warm</b> "
        "launched before the split time T, <b>cold</b> launched at/after T (no training "
        "interactions). Users: those with a relevant (cart or purchase) test interaction; "
        "known positives filtered for every model.</p>"
    )
    for seg in C.SEGMENTS:
        sub = metrics[metrics[C.SEGMENT] == seg].drop(columns=[C.SEGMENT])
        if sub.empty:
            continue
        parts.append(f"<h3>{seg}</h3>")
        parts.append(
            _table(
                sub, row_class=lambda r: "cand" if r[C.MODEL] == candidate else "", left=(C.MODEL,)
            )
        )
    for metric in ("ndcg@10", "recall@20"):
        img = _bar_chart(metrics, metric, candidate)
        if img:
            parts.append(f"<p><img alt='{metric}' src='{img}'></p>")
    parts.append("<h2>Learning curve</h2>")
    img = _curve_chart(learning_curve or [], best_epoch)
    parts.append(
        f"<p><img alt='learning curve' src='{img}'></p>" if img else "<p>No early stopping run.</p>"
    )
    if learning_curve:
        parts.append(_table(pd.DataFrame(learning_curve)))
    if blend_search:
        parts.append("<h2>Blend weight search</h2>")
        img = _blend_chart(blend_search)
        if img:
            parts.append(f"<p><img alt='blend search' src='{img}'></p>")
    if timings:
        parts.append("<h2>Timings (s)</h2>")
        parts.append(
            _table(
                pd.DataFrame({"step": list(timings), "seconds": list(timings.values())}),
                left=("step",),
            )
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(html_text: str, path: str | Path) -> Path:
    """Write the report atomically."""
    from recsys.registry import atomic_write_text

    path = Path(path)
    atomic_write_text(path, html_text)
    return path
