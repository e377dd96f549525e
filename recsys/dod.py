"""Definition-of-done gate: clauses from ``definition_of_done.yaml`` checked on the metrics table.

Each clause yields pass / fail / skipped with the observed value, the required value and the
margin (``observed - required`` for ``>=``, ``required - observed`` for ``<=``: positive means
passing by that much; ``margin_pct`` relative to the required value).

Comparative clauses (``compare_to`` + ``factor``) are judged with uncertainty when per-user
metric values are given (:func:`recsys.evaluate.evaluate`): ``ratio`` = candidate / reference
(the point estimate on all test users) with a paired bootstrap interval
``[ci_low, ci_high]`` over test users (:mod:`recsys.bootstrap`). The rule (``rule``):

``better``  (``>=`` with factor > 1)
    passes when ``ratio >= factor`` and ``ci_low > 1``: the point estimate reaches the
    factor and the candidate is better than the reference beyond the noise.
``no_worse`` (``>=`` with factor <= 1)
    fails only when ``ci_high < factor``: the candidate is worse beyond the noise.
``<=`` clauses mirror these (``better``: ``ratio <= factor`` and ``ci_high < 1``;
``no_worse``: fails only when ``ci_low > factor``).
``point``
    no per-user values (or a threshold clause): the point estimate decides alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys import columns as C
from recsys.bootstrap import (
    BootstrapConfig,
    paired_ratio,
    point_ratio,
    ratio_interval,
    resample_series,
)

DEFAULT_CONTRACT = Path(__file__).with_name("definition_of_done.yaml")
PASS, FAIL, SKIPPED = "pass", "fail", "skipped"
RULE_BETTER, RULE_NO_WORSE, RULE_POINT, RULE_THRESHOLD = "better", "no_worse", "point", "threshold"

#: per-user metric values: ``per_user[model][segment][metric]`` is ``(n_users,)`` float, NaN
#: for users without a relevant item in the segment; rows are the same users for every model.
PerUser = Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]


@dataclass(frozen=True)
class ClauseResult:
    id: str
    status: str  # pass | fail | skipped
    observed: float
    required: float
    margin: float
    margin_pct: float
    description: str
    owner: str
    detail: str
    rule: str = RULE_THRESHOLD
    reference: str | None = None  # the model compared to (comparative clauses)
    factor: float | None = None
    ratio: float | None = None  # candidate / reference, point estimate
    ci_low: float | None = None  # paired bootstrap interval of the ratio (None: not computed)
    ci_high: float | None = None
    n_users: int | None = None  # users the ratio and the interval rest on

    @property
    def passed(self) -> bool:
        return self.status != FAIL

    def interval_text(self) -> str:
        """``ratio 1.23 [1.05, 1.41] (rule)`` or "" for threshold clauses."""
        if self.ratio is None:
            return ""
        ci = (
            f" [{self.ci_low:.3g}, {self.ci_high:.3g}]"
            if self.ci_low is not None and self.ci_high is not None
            else ""
        )
        return f"ratio {self.ratio:.3g}{ci} vs {self.factor:g}x ({self.rule})"


@dataclass(frozen=True)
class Considered:
    """One candidate's verdict when several compete (:func:`choose_candidate`)."""

    candidate: str
    passed: bool
    ndcg_at_10: float
    failed: tuple[str, ...]


@dataclass(frozen=True)
class DoDReport:
    passed: bool
    candidate: str
    clauses: tuple[ClauseResult, ...] = field(default_factory=tuple)
    considered: tuple[Considered, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> tuple[ClauseResult, ...]:
        return tuple(c for c in self.clauses if c.status == FAIL)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "candidate": self.candidate,
            "clauses": [asdict(c) for c in self.clauses],
            "considered": [asdict(c) for c in self.considered],
        }

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(c) for c in self.clauses])

    def summary(self) -> str:
        lines = [f"definition of done: {'PASSED' if self.passed else 'FAILED'} ({self.candidate})"]
        for c in self.considered:
            verdict = "passes" if c.passed else "fails " + ", ".join(c.failed)
            lines.append(f"  candidate {c.candidate}: nDCG@10 {c.ndcg_at_10:.4g}, {verdict}")
        for c in self.clauses:
            extra = f"; {c.interval_text()}" if c.ratio is not None else ""
            lines.append(
                f"  [{c.status:7s}] {c.id}: observed {c.observed:.4g} {c.detail} "
                f"(margin {c.margin:+.4g}, {c.margin_pct:+.1f}%{extra})"
            )
        return "\n".join(lines)


def load_contract(path: str | Path | None = None) -> dict[str, Any]:
    """Read a definition-of-done YAML (default: the one shipped next to this module)."""
    import yaml

    with open(path or DEFAULT_CONTRACT, encoding="utf-8") as fh:
        contract = yaml.safe_load(fh)
    if not isinstance(contract, dict) or "clauses" not in contract:
        raise ValueError(f"{path or DEFAULT_CONTRACT}: expected a mapping with 'clauses'")
    return contract


def _value(table: pd.DataFrame, model: str, segment: str, metric: str) -> float:
    if metric not in table.columns:
        raise KeyError(f"metric {metric!r} is not in the evaluation table ({list(table.columns)})")
    sel = table[(table[C.MODEL] == model) & (table[C.SEGMENT] == segment)]
    if sel.empty:
        return float("nan")
    value = sel[metric].iloc[0]
    return float(value) if value is not None else float("nan")


def bootstrap_config(contract: dict[str, Any]) -> BootstrapConfig:
    """The contract's ``bootstrap:`` section (defaults: 2,000 resamples, 95 %, seed 42)."""
    section = dict(contract.get("bootstrap") or {})
    return BootstrapConfig(**section)


def _per_user(per_user: PerUser | None, model: str, segment: str, metric: str):
    try:
        return np.asarray(per_user[model][segment][metric], dtype=np.float64)  # type: ignore[index]
    except (KeyError, TypeError):
        return None


def judge(op: str, factor: float, ratio: float, ci_low: float, ci_high: float) -> tuple[str, bool]:
    """The rule of a comparative clause and whether it passes (see the module docstring).

    >>> judge(">=", 1.1, 1.12, 1.02, 1.22)
    ('better', True)
    >>> judge(">=", 1.1, 1.12, 0.98, 1.25)   # reaches the factor but not beyond the noise
    ('better', False)
    >>> judge(">=", 1.0, 0.95, 0.90, 1.01)   # no worse: the interval still reaches 1
    ('no_worse', True)
    """
    better = factor > 1.0 if op == ">=" else factor < 1.0
    if op == ">=":
        if better:
            return RULE_BETTER, ratio >= factor and ci_low > 1.0
        return RULE_NO_WORSE, not ci_high < factor
    if better:
        return RULE_BETTER, ratio <= factor and ci_high < 1.0
    return RULE_NO_WORSE, not ci_low > factor


def _fmt(value: float) -> str:
    """A value in a clause's text: 'n/a' when the segment had nothing to measure."""
    return "n/a" if math.isnan(value) else f"{value:.4g}"


def check_definition_of_done(
    table: pd.DataFrame,
    contract: dict[str, Any] | str | Path | None = None,
    candidate: str | None = None,
    per_user: PerUser | None = None,
    resampled: dict[tuple, np.ndarray] | None = None,
) -> DoDReport:
    """Check every clause of the contract against an evaluation table.

    Parameters
    ----------
    table
        Output of :func:`recsys.evaluate.evaluate_models` (columns ``model``, ``segment``,
        metrics).
    contract
        Parsed contract, a path to one, or None for the shipped default.
    candidate
        Overrides the contract's ``candidate``.
    per_user
        ``per_user[model][segment][metric]`` ``(n_users,)`` values
        (:attr:`recsys.evaluate.Evaluation.per_user`): comparative clauses then get a paired
        bootstrap interval and the ``better`` / ``no_worse`` rules; without it (or without
        the values of a clause's models) the point estimate decides (rule ``point``).
    resampled
        Optional cache of resampled means by ``(model, segment, metric)``
        (:func:`recsys.bootstrap.resample_series`): the same intervals, drawn once.
    """
    if not isinstance(contract, dict):
        contract = load_contract(contract)
    cand = candidate or contract.get("candidate")
    if not cand:
        raise ValueError("no candidate model named (contract 'candidate' or argument)")
    boot = bootstrap_config(contract)
    baselines = list(contract.get("baselines", []))
    results = []
    for clause in contract["clauses"]:
        cid = clause["id"]
        metric = clause["metric"]
        segment = clause.get("segment", C.SEGMENT_ALL)
        model = cand if clause.get("model", "candidate") == "candidate" else clause["model"]
        op = clause.get("op", ">=")
        if op not in (">=", "<="):
            raise ValueError(f"clause {cid}: op {op!r} must be '>=' or '<='")
        observed = _value(table, model, segment, metric)
        extra: dict[str, Any] = {}
        comparative = "threshold" not in clause
        if not comparative:
            required = float(clause["threshold"])
            detail = f"{op} {required:.4g}"
        else:
            ref = clause["compare_to"]
            factor = float(clause.get("factor", 1.0))
            if ref == "best_baseline":
                values = {b: _value(table, b, segment, metric) for b in baselines}
                values = {b: v for b, v in values.items() if not math.isnan(v)}
                if values:
                    pick = max if op == ">=" else min
                    ref = pick(values, key=values.__getitem__)
                    base = values[ref]
                else:
                    ref, base = "best_baseline", float("nan")
            else:
                base = _value(table, ref, segment, metric)
            required = factor * base
            detail = f"{op} {factor:g} x {ref} ({_fmt(base)}) = {_fmt(required)}"
            extra = {"reference": ref, "factor": factor}
        if math.isnan(observed) or math.isnan(required):
            status = SKIPPED if clause.get("on_missing", "fail") == "skip" else FAIL
            margin = margin_pct = float("nan")
            detail += " [not measurable on this data]"
            if comparative:
                extra["rule"] = RULE_POINT
        else:
            margin = observed - required if op == ">=" else required - observed
            margin_pct = 100.0 * margin / abs(required) if required != 0 else float("inf")
            status = PASS if margin >= 0 else FAIL
            if required == 0 and margin == 0:
                margin_pct = 0.0
            if comparative:
                a = _per_user(per_user, model, segment, metric)
                b = _per_user(per_user, extra["reference"], segment, metric)
                ka, kb = (model, segment, metric), (extra["reference"], segment, metric)
                if resampled is not None and ka in resampled and kb in resampled:
                    ratio = point_ratio(a, b)
                    lo, hi = ratio_interval(resampled[ka], resampled[kb], boot.confidence)
                    rule, ok = judge(op, factor, ratio, lo, hi)
                    status = PASS if ok else FAIL
                    n = int((~(np.isnan(a) | np.isnan(b))).sum())
                    extra.update(rule=rule, ratio=ratio, ci_low=lo, ci_high=hi, n_users=n)
                elif a is not None and b is not None and len(a) == len(b):
                    ratio, lo, hi = paired_ratio(a, b, boot)
                    rule, ok = judge(op, factor, ratio, lo, hi)
                    status = PASS if ok else FAIL
                    n = int((~(np.isnan(a) | np.isnan(b))).sum())
                    extra.update(rule=rule, ratio=ratio, ci_low=lo, ci_high=hi, n_users=n)
                else:
                    ratio = observed / base if base else (1.0 if observed == 0 else math.inf)
                    extra.update(rule=RULE_POINT, ratio=ratio)
        results.append(
            ClauseResult(
                id=cid,
                status=status,
                observed=observed,
                required=required,
                margin=margin,
                margin_pct=margin_pct,
                description=clause.get("description", ""),
                owner=clause.get("owner", "DS"),
                detail=f"{metric}[{model}, {segment}] {detail}",
                **extra,
            )
        )
    passed = all(r.status != FAIL for r in results)
    return DoDReport(passed=passed, candidate=cand, clauses=tuple(results))


def candidates_of(contract: dict[str, Any]) -> list[str]:
    """The contract's candidates, primary first: ``candidate`` then ``candidates``."""
    names = [contract["candidate"]] if contract.get("candidate") else []
    names += list(contract.get("candidates", []))
    if not names:
        raise ValueError("no candidate model named (contract 'candidate' or 'candidates')")
    return list(dict.fromkeys(names))


def choose_candidate(
    table: pd.DataFrame,
    contract: dict[str, Any] | str | Path | None = None,
    per_user: PerUser | None = None,
) -> DoDReport:
    """Check the definition of done for every candidate of the contract; the report of the
    best one that passes (highest nDCG@10 over all items; the contract's order breaks ties),
    or, when none passes, of the primary candidate. ``considered`` holds every verdict.
    """
    if not isinstance(contract, dict):
        contract = load_contract(contract)
    names = candidates_of(contract)
    resampled = None
    if per_user:  # every series a comparative clause may use, resampled once per segment
        wanted = {
            (c.get("segment", C.SEGMENT_ALL), c["metric"])
            for c in contract["clauses"]
            if "threshold" not in c
        }
        series = {
            (model, seg, metric): np.asarray(per_user[model][seg][metric])
            for model in per_user
            for seg, metric in wanted
            if metric in per_user[model].get(seg, {})
        }
        resampled = resample_series(series, bootstrap_config(contract))
    reports = {
        name: check_definition_of_done(table, contract, name, per_user, resampled) for name in names
    }
    considered = tuple(
        Considered(
            candidate=name,
            passed=r.passed,
            ndcg_at_10=_value(table, name, C.SEGMENT_ALL, "ndcg@10"),
            failed=tuple(c.id for c in r.failed),
        )
        for name, r in reports.items()
    )
    passing = [c for c in considered if c.passed]
    if passing:
        best = max(passing, key=lambda c: -math.inf if math.isnan(c.ndcg_at_10) else c.ndcg_at_10)
        chosen = best.candidate
    else:
        chosen = names[0]
    r = reports[chosen]
    return DoDReport(passed=r.passed, candidate=chosen, clauses=r.clauses, considered=considered)


#: baselines that can be saved and served as they are (factor models; popularity is one with
#: zero dimensions): what :func:`fallback_baseline` may choose
PUBLISHABLE_BASELINES: tuple[str, ...] = ("als", "popularity")


def fallback_baseline(
    table: pd.DataFrame, publishable: tuple[str, ...] = PUBLISHABLE_BASELINES
) -> str | None:
    """The best publishable baseline (highest nDCG@10 over all items), or None.

    Used when no candidate passes and nothing was ever published: the shop then gets this
    baseline's lists, labelled ``kind: baseline`` (:func:`recsys.registry.publish_decision`).
    """
    values = {b: _value(table, b, C.SEGMENT_ALL, "ndcg@10") for b in publishable}
    values = {b: v for b, v in values.items() if not math.isnan(v)}
    return max(values, key=values.__getitem__) if values else None


CANDIDATE, BASELINE, NONE = "candidate", "baseline", "none"


def publish_decision(dod: DoDReport, table: pd.DataFrame, ever_published: bool) -> dict[str, Any]:
    """What a training run publishes: ``{"kind", "model", "reason"}``.

    ``kind`` is ``candidate`` (the chosen candidate passed), ``baseline`` (no candidate
    passed and nothing was ever published: the best publishable baseline, so the shop is
    never without recommendations; the recommendations gate still checks its lists; a later
    passing candidate replaces it) or ``none`` (no candidate passed; the served version stays).
    """
    if dod.passed:
        return {
            "kind": CANDIDATE,
            "model": dod.candidate,
            "reason": "passed its definition of done",
        }
    failed = (
        "; ".join(
            f"{c.candidate} failed {', '.join(c.failed)}" for c in dod.considered if not c.passed
        )
        or f"{dod.candidate} failed {', '.join(c.id for c in dod.failed)}"
    )
    if ever_published:
        return {
            "kind": NONE,
            "model": None,
            "reason": f"no candidate passed its definition of done ({failed}); "
            "the served version stays",
        }
    baseline = fallback_baseline(table)
    if baseline is None:
        return {
            "kind": NONE,
            "model": None,
            "reason": f"no candidate passed ({failed}) and no publishable baseline was evaluated",
        }
    ndcg = _value(table, baseline, C.SEGMENT_ALL, "ndcg@10")
    return {
        "kind": BASELINE,
        "model": baseline,
        "reason": f"no candidate passed its definition of done ({failed}) and no model was "
        f"ever published: serving the best baseline, {baseline} (nDCG@10 {ndcg:.4g}), until "
        "a candidate passes",
    }
