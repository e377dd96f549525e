"""Charts of the business report, drawn with matplotlib's object API (no pyplot state).

Every function takes exported mart frames (pandas, one row per the mart's grain), returns a
self-contained SVG as a ``data:`` URI for an ``<img>`` tag (no file, no network), or ``None``
when the frame is empty, so the report can say "no data" instead of drawing empty axes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

BLUE = "#1f5f99"
ORANGE = "#d9782d"
GREY = "#8a8f98"
GREEN = "#3a8a4f"
PURPLE = "#7a4fa0"
#: Days beyond which time-to-return values share the last histogram bin.
RETURN_DAYS_CAP = 60


def _figure(nrows: int = 1, ncols: int = 1, *, width: float = 10.0, height: float = 3.8, **kw):
    import matplotlib

    # Stable SVG element ids and no timestamp: the same data gives the same bytes.
    matplotlib.rcParams["svg.hashsalt"] = "trasos-business-report"
    matplotlib.rcParams["font.size"] = 9
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def to_data_uri(fig: Any) -> str:
    """The figure as ``data:image/svg+xml;base64,...``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _percent_axis(ax: Any) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))


def _date_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def conversion_trend(trend: pd.DataFrame) -> str | None:
    """Non-customer conversion per day and its rolling rate; visitors and buyers below.

    ``trend``: metrics_conversion_trend (one row per day with visitors; the rates are the
    mart's, this function only draws them).
    """
    if trend.empty:
        return None
    import pandas as pd

    by_day = trend.assign(activity_date=pd.to_datetime(trend["activity_date"]))
    by_day = by_day.sort_values("activity_date").set_index("activity_date")
    rate = by_day["non_customer_conversion_rate"].astype(float)
    rolling = by_day["rolling_non_customer_conversion_rate"].astype(float)
    rolling_days = int(by_day["rolling_window_days"].iloc[0])

    fig, axes = _figure(2, 1, height=5.0, sharex=True, height_ratios=[3, 2])
    ax_rate, ax_n = axes[0, 0], axes[1, 0]
    ax_rate.plot(rate.index, rate.values, color=GREY, marker="o", ms=3, lw=1, label="daily")
    ax_rate.plot(
        rolling.index, rolling.values, color=BLUE, lw=2.2, label=f"{rolling_days}-day rolling"
    )
    ax_rate.set_ylabel("non-customer conversion")
    ax_rate.set_ylim(bottom=0)
    _percent_axis(ax_rate)
    ax_rate.legend(loc="upper left", frameon=False)
    ax_rate.grid(axis="y", alpha=0.3)
    ax_n.bar(by_day.index, by_day["n_visitors"], color="#c9d6e3", label="visitors", width=0.8)
    ax_n.bar(by_day.index, by_day["n_new_visitors"], color=BLUE, label="new visitors", width=0.5)
    ax_n.plot(
        by_day.index,
        by_day["n_first_time_buyers"],
        color=ORANGE,
        marker="o",
        ms=3,
        lw=1.5,
        label="first-time buyers",
    )
    ax_n.set_ylabel("per day")
    ax_n.legend(loc="upper left", frameon=False, ncols=3)
    ax_n.grid(axis="y", alpha=0.3)
    _date_axis(ax_n)
    return to_data_uri(fig)


def time_to_return(
    returns: pd.DataFrame, by_cohort: pd.DataFrame, range_totals: Mapping[str, Any]
) -> str | None:
    """Distribution of customers' days to return (left) and the cohort median trend (right).

    ``returns``: metrics_time_to_return rows; ``by_cohort``: metrics_return_by_cohort;
    ``range_totals``: the metrics_headline row (counts and medians of the legend).
    """
    customer_returns = returns[returns["is_customer"].astype(bool)] if len(returns) else returns
    if customer_returns.empty and by_cohort.empty:
        return None
    import numpy as np
    import pandas as pd
    from matplotlib.ticker import MaxNLocator

    fig, axes = _figure(1, 2, height=3.8)
    ax_hist, ax_trend = axes[0, 0], axes[0, 1]
    bins = np.arange(0, RETURN_DAYS_CAP + 2) - 0.5
    for kind, color, label, n, median in (
        (
            "session",
            BLUE,
            "next visit",
            "n_customer_returns",
            "median_days_to_next_visit_customers",
        ),
        (
            "purchase",
            ORANGE,
            "next order",
            "n_customer_repeat_orders",
            "median_days_to_next_order_customers",
        ),
    ):
        days = customer_returns.loc[customer_returns["return_type"] == kind, "days_to_return"]
        if len(days):
            ax_hist.hist(
                np.minimum(days.to_numpy(dtype=float), RETURN_DAYS_CAP),
                bins=bins,
                histtype="step",
                lw=1.8,
                color=color,
                label=f"{label} (n={range_totals[n]:,}, median {range_totals[median]:.0f} d)",
            )
    ax_hist.set_xlabel(f"days to return (last bin: {RETURN_DAYS_CAP} days or more)")
    ax_hist.set_ylabel("returns")
    ax_hist.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_hist.set_title("Customers: days until they came back", loc="left")
    ax_hist.legend(frameon=False)
    ax_hist.grid(axis="y", alpha=0.3)

    if not by_cohort.empty:
        cohorts = by_cohort.assign(cohort_week=pd.to_datetime(by_cohort["cohort_week"]))
        cohorts = cohorts.sort_values("cohort_week")
        ax_trend.plot(
            cohorts["cohort_week"],
            cohorts["median_days_to_return"],
            color=BLUE,
            marker="o",
            lw=2,
            label="median days to next visit",
        )
        # Cohorts not yet followed for the whole window: hollow, their median is still rising.
        young = cohorts[cohorts["n_customers_window_observed"] < cohorts["n_customers"]]
        ax_trend.plot(
            young["cohort_week"],
            young["median_days_to_return"],
            ls="none",
            marker="o",
            ms=7,
            mfc="white",
            mec=BLUE,
            label="(hollow: cohort still young)",
        )
        ax_trend.set_ylabel("median days")
        ax_trend.set_ylim(bottom=0)
        ax_share = ax_trend.twinx()
        window = int(cohorts["return_window_days"].iloc[0])
        ax_share.plot(
            cohorts["cohort_week"],
            cohorts["return_rate_within_window"],
            color=GREEN,
            marker="s",
            ls="--",
            lw=1.5,
            label=f"returned within {window} days",
        )
        ax_share.set_ylim(0, 1.05)
        _percent_axis(ax_share)
        lines = ax_trend.get_lines() + ax_share.get_lines()
        ax_trend.legend(lines, [ln.get_label() for ln in lines], frameon=False, loc="lower left")
        _date_axis(ax_trend)
    ax_trend.set_title("By cohort (week of first purchase)", loc="left")
    ax_trend.grid(axis="y", alpha=0.3)
    return to_data_uri(fig)


def retention_heatmap(cohorts: pd.DataFrame) -> str | None:
    """Share of each first-purchase cohort buying in week N (rows: cohorts, columns: N).

    ``cohorts``: metrics_retention_cohorts. Weeks not yet complete are marked with ``*``.
    """
    if cohorts.empty:
        return None
    import numpy as np
    import pandas as pd

    frame = cohorts.assign(cohort_week=pd.to_datetime(cohorts["cohort_week"]).dt.date)
    share = frame.pivot(
        index="cohort_week", columns="weeks_since_first_purchase", values="purchasing_share"
    ).sort_index()
    complete = frame.pivot(
        index="cohort_week", columns="weeks_since_first_purchase", values="is_complete_week"
    ).reindex_like(share)
    sizes = frame.groupby("cohort_week")["cohort_size"].first().reindex(share.index)
    n_rows, n_cols = share.shape
    fig, axes = _figure(
        width=min(12.0, max(6.0, 3.0 + 0.75 * n_cols)),
        height=min(12.0, max(2.6, 1.3 + 0.36 * n_rows)),
    )
    ax = axes[0, 0]
    image = ax.imshow(share.to_numpy(dtype=float), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    values = share.to_numpy(dtype=float)
    for row in range(n_rows):
        for col in range(n_cols):
            value = values[row, col]
            if np.isnan(value):
                continue
            mark = "" if bool(complete.iat[row, col]) else "*"
            ax.text(
                col,
                row,
                f"{value:.0%}{mark}",
                ha="center",
                va="center",
                fontsize=7.5,
                color="white" if value > 0.55 else "#1b1b1b",
            )
    ax.set_xticks(range(n_cols), [str(c) for c in share.columns])
    ax.set_yticks(range(n_rows), [f"{week:%Y-%m-%d} (n={int(n)})" for week, n in sizes.items()])
    ax.set_xlabel("weeks since first purchase (* = week not complete yet)")
    ax.set_ylabel("first-purchase week")
    fig.colorbar(image, ax=ax, shrink=0.8, format="{x:.0%}")
    return to_data_uri(fig)


FUNNEL_STEPS: tuple[tuple[str, str], ...] = (
    ("n_sessions", "sessions"),
    ("n_product_view_sessions", "product view"),
    ("n_add_to_cart_sessions", "add to cart"),
    ("n_purchase_sessions", "purchase"),
)


def funnel(daily: pd.DataFrame, range_totals: Mapping[str, Any]) -> str | None:
    """The session funnel over the whole range (left) and its step rates per day (right).

    ``daily``: metrics_funnel_daily; ``range_totals``: the metrics_headline row.
    """
    if daily.empty:
        return None
    import pandas as pd

    frame = daily.assign(session_date=pd.to_datetime(daily["session_date"])).sort_values(
        "session_date"
    )
    totals = [int(range_totals[column]) for column, _ in FUNNEL_STEPS]
    fig, axes = _figure(1, 2, height=3.8, width_ratios=[2, 3])
    ax_bars, ax_rates = axes[0, 0], axes[0, 1]
    labels = [label for _, label in FUNNEL_STEPS]
    positions = list(range(len(labels)))[::-1]
    ax_bars.barh(positions, totals, color=[GREY, BLUE, PURPLE, ORANGE])
    for i, (position, total) in enumerate(zip(positions, totals, strict=True)):
        step = "" if i == 0 or not totals[i - 1] else f"  {total / totals[i - 1]:.0%} of previous"
        ax_bars.text(total, position, f" {total:,}{step}", va="center", fontsize=8)
    ax_bars.set_yticks(positions, labels)
    ax_bars.set_xlim(0, max(totals) * 1.9 if max(totals) else 1)
    ax_bars.set_xlabel("sessions, whole range")
    ax_bars.spines[["top", "right"]].set_visible(False)

    for column, color, label in (
        ("view_to_cart_rate", PURPLE, "view -> cart"),
        ("cart_to_purchase_rate", ORANGE, "cart -> purchase"),
        ("view_to_purchase_rate", BLUE, "view -> purchase"),
    ):
        rate = frame[column].astype(float)
        ax_rates.plot(frame["session_date"], rate, color=color, marker="o", ms=3, label=label)
    ax_rates.set_ylim(0, 1.05)
    _percent_axis(ax_rates)
    ax_rates.set_title("Step conversion per day", loc="left")
    ax_rates.legend(frameon=False, ncols=3, loc="upper left")
    ax_rates.grid(axis="y", alpha=0.3)
    _date_axis(ax_rates)
    return to_data_uri(fig)


def recommendation_impact(impact: pd.DataFrame) -> str | None:
    """Sessions with and without a recommendation click: conversion and return rates.

    ``impact``: metrics_recommendation_impact (one row per group).
    """
    if impact.empty:
        return None
    import numpy as np

    window = int(impact["return_window_days"].iloc[0])
    measures = (
        ("conversion_rate", "converted in the session"),
        ("return_rate", "came back (so far)"),
        ("return_rate_within_window", f"came back within {window} days"),
    )
    frame = impact.sort_values("has_recommendation_click")
    fig, axes = _figure(height=3.6, width=9.0)
    ax = axes[0, 0]
    x = np.arange(len(measures))
    width = 0.38
    for _, row in frame.iterrows():
        clicked = bool(row["has_recommendation_click"])
        offset, color = (width / 2, BLUE) if clicked else (-width / 2, GREY)
        values = [row[column] for column, _ in measures]
        heights = [0 if v is None or v != v else v for v in values]  # NaN -> empty bar
        bars = ax.bar(
            x + offset,
            heights,
            width,
            color=color,
            label=f"{row['session_group']} (n={int(row['n_sessions']):,})",
        )
        for bar, value in zip(bars, values, strict=True):
            text = "n/a" if value is None or value != value else f"{value:.0%}"
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                bar.get_height(),
                text,
                ha="center",
                va="bottom",
                fontsize=8,
            )
    ax.set_xticks(x, [label for _, label in measures])
    ax.set_ylim(0, 1.3)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    _percent_axis(ax)
    ax.legend(frameon=False, loc="upper center", ncols=2)
    ax.set_ylabel("share of sessions")
    ax.grid(axis="y", alpha=0.3)
    return to_data_uri(fig)


#: How each experiment metric is drawn: (title, unit of the values).
EXPERIMENT_METRICS: dict[str, tuple[str, str]] = {
    "new_visitor_conversion": ("Conversion of new visitors", "share"),
    "customer_return_within_n_days": ("Customers back within N days", "share"),
    "median_days_to_return": ("Median days to return (customers)", "days"),
}


def experiment_metric(row: Mapping[str, Any]) -> str | None:
    """One experiment metric: the two variants' values (left) and the absolute uplift with its
    95 % interval against zero (right).

    ``row``: one row of metrics_experiment_uplift.
    """
    values = (row.get("control_value"), row.get("treatment_value"))
    interval = (row.get("uplift_abs_ci_low"), row.get("uplift_abs_ci_high"), row.get("uplift_abs"))
    if any(v is None or v != v for v in (*values, *interval)):  # too few visitors: no chart
        return None
    title, unit = EXPERIMENT_METRICS.get(str(row["metric"]), (str(row["metric"]), "share"))
    fig, axes = _figure(1, 2, width=9.0, height=2.6, width_ratios=[1, 1.4])
    left, right = axes[0, 0], axes[0, 1]
    labels = [
        f"control\n(n={int(row['n_control'] or 0):,})",
        f"treatment\n(n={int(row['n_treatment'] or 0):,})",
    ]
    bars = left.bar(labels, values, color=[GREY, BLUE], width=0.6)
    for bar, value in zip(bars, values, strict=True):
        text = f"{value:.1%}" if unit == "share" else f"{value:.2f} d"
        left.text(
            bar.get_x() + bar.get_width() / 2, bar.get_height(), text, ha="center", va="bottom"
        )
    if unit == "share":
        _percent_axis(left)
    left.set_ylim(0, max(values) * 1.3 or 1)
    left.set_title(title, fontsize=9)
    left.grid(axis="y", alpha=0.3)
    low, high, mid = row["uplift_abs_ci_low"], row["uplift_abs_ci_high"], row["uplift_abs"]
    significant = bool(row.get("is_significant"))
    color = (
        GREEN if significant and (mid > 0) == (unit == "share") else ORANGE if significant else GREY
    )
    right.errorbar([mid], [0], xerr=[[mid - low], [high - mid]], fmt="o", color=color, capsize=6)
    right.axvline(0, color="black", linewidth=0.8)
    span = max(abs(low), abs(high)) * 1.4 or 1
    right.set_xlim(-span, span)
    right.set_yticks([])
    if unit == "share":
        from matplotlib.ticker import PercentFormatter

        right.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    right.set_title("treatment - control, 95 % interval", fontsize=9)
    right.grid(axis="x", alpha=0.3)
    return to_data_uri(fig)


# --- monitoring page -----------------------------------------------------------------------------
def check_history_figure(group: pd.DataFrame, title: str) -> Any:
    """One monitored metric over the data days: a line per dimension, its threshold dashed.

    ``group`` holds ``monitoring.checks`` rows of one (monitor, metric). A single data day gets
    a one-day margin either side (matplotlib would otherwise widen a lone date to years).
    """
    import math

    import matplotlib.dates as mdates
    import pandas as pd

    fig, axes = _figure(width=9, height=2.6)
    ax = axes[0][0]
    days = pd.to_datetime(group["day"])
    for dim, series in group.assign(day=days).groupby("dimension"):
        series = series.sort_values("day")
        ax.plot(series["day"], series["value"], marker="o", label=str(dim) or title)
    thresholds = group["threshold"].unique()
    if len(thresholds) == 1 and math.isfinite(thresholds[0]):
        ax.axhline(thresholds[0], color="#c0392b", linestyle="--", linewidth=1, label="threshold")
    ax.set_title(title)
    ax.set_xlabel("data day")
    if days.nunique() == 1:
        day = days.iloc[0]
        ax.set_xlim(day - pd.Timedelta(days=1), day + pd.Timedelta(days=1))
        ax.xaxis.set_major_locator(mdates.DayLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    else:
        _date_axis(ax)
    if group["dimension"].nunique() <= 12:
        ax.legend(fontsize=7, ncols=4, loc="upper left")
    return fig


def check_history(group: pd.DataFrame, title: str) -> str:
    """:func:`check_history_figure` as a ``data:`` URI."""
    return to_data_uri(check_history_figure(group, title))


# --- evaluation page (data from recsys.report.report_data) ------------------------------------
def evaluation_bars(metrics: pd.DataFrame, metric: str, candidate: str) -> str | None:
    """``metric`` by model (bars grouped by item segment); the candidate's name in stars."""
    import numpy as np

    if metrics.empty or metric not in metrics.columns:
        return None
    order = ("all", "warm", "cold")
    pivot = metrics.pivot(index="model", columns="segment", values=metric)
    pivot = pivot.reindex(columns=[s for s in order if s in pivot.columns])
    pivot = pivot.loc[metrics["model"].drop_duplicates()]
    fig, axes = _figure(width=8, height=3.6)
    ax = axes[0][0]
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
    return to_data_uri(fig)


def learning_curve(curve: list[dict], best_epoch: int | None) -> str | None:
    """The validation metric per epoch of LightFM's early stopping run."""
    import pandas as pd

    if not curve:
        return None
    frame = pd.DataFrame(curve)
    metric = next(c for c in frame.columns if c.startswith("validation_"))
    fig, axes = _figure(width=6, height=3.2)
    ax = axes[0][0]
    ax.plot(frame["epoch"], frame[metric], marker="o")
    if best_epoch:
        ax.axvline(best_epoch, color=GREEN, ls="--", label=f"best epoch {best_epoch}")
        ax.legend(fontsize=8)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title("LightFM learning curve on the validation slice")
    ax.grid(alpha=0.3)
    return to_data_uri(fig)


def _last_rank(frame):
    """The search points at the chosen ALS rank (the co-occurrence pass runs there), with
    ``als_weight`` 0 when the search had no ALS part."""
    if "als_weight" not in frame.columns:
        frame["als_weight"] = 0.0
    if "als_factors" in frame.columns and len(frame):
        frame = frame[frame["als_factors"] == frame["als_factors"].iloc[-1]]
    return frame


def blend_search_panels(search: list[dict]) -> list[float]:
    """ALS shares of the blend search that hold a line (two or more co-occurrence weights);
    a panel with one point shows nothing a table does not."""
    import pandas as pd

    if not search:
        return []
    frame = _last_rank(pd.DataFrame(search))
    points = frame.groupby("als_weight")["weight"].nunique()
    return [float(a) for a in sorted(points[points >= 2].index)]


def blend_search(search: list[dict]) -> str | None:
    """Validation metric against the co-occurrence weight, one panel per ALS share that has
    a line (:func:`blend_search_panels`); None when no panel has one."""
    import numpy as np
    import pandas as pd

    panels = blend_search_panels(search)
    if not panels:
        return None
    frame = _last_rank(pd.DataFrame(search))
    metric = next(c for c in frame.columns if c.startswith("validation_"))
    fig, axes = _figure(1, len(panels), width=4.2 * len(panels), height=3.2, sharey=True)
    axes = np.atleast_1d(axes[0])
    for ax, share in zip(axes, panels, strict=True):
        for lam, g in frame[frame["als_weight"] == share].groupby("self_weight"):
            g = g.sort_values("weight")
            ax.plot(g["weight"], g[metric], marker="o", label=f"self_weight {lam:g}")
        ax.set_xlabel("co-occurrence weight w")
        ax.set_title(f"ALS share of factors {share:g}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric)
    axes[0].legend(fontsize=7)
    fig.suptitle("Blend weight search on the validation slice", fontsize=10)
    return to_data_uri(fig)
