"""Run the session-last-item protocol: baselines and the session model on one split."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.session.data import (
    ITEM_ID,
    SPLIT,
    SPLIT_TEST,
    SPLIT_TRAIN,
    Cases,
    Sessions,
    last_item_cases,
    subsample_cases,
    time_split,
    to_sessions,
)
from recsys.session.knn import SESSION_HYBRID, SessionStan
from recsys.session.models import (
    COOCCURRENCE,
    POPULARITY,
    Cooccurrence,
    Popularity,
    SessionKNN,
    SessionKNNConfig,
    item_counts,
)
from recsys.session.protocol import HR, MRR, ModelResult, evaluate_model, popularity_key
from recsys.session.tuning import TuningResult, tune

PROTOCOL = "session-last-item"
#: the model that would be published
CANDIDATE = SESSION_HYBRID
BASELINES: tuple[str, ...] = (POPULARITY, COOCCURRENCE)


@dataclass
class SessionEvaluation:
    """Figures of one protocol run, and the fitted session model."""

    n_test_sessions: int
    results: dict[str, ModelResult]
    tuning: TuningResult
    model: SessionStan
    items: pd.Index
    extra: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        """The CLI's JSON object."""
        return {
            "protocol": PROTOCOL,
            "n_test_sessions": self.n_test_sessions,
            "candidate": CANDIDATE,
            "models": {name: r.as_dict() for name, r in self.results.items()},
        }

    def ratio(self, metric: str = HR, to: str = COOCCURRENCE) -> float:
        base = getattr(self.results[to], "hr" if metric == HR else "mrr")
        ours = getattr(self.results[CANDIDATE], "hr" if metric == HR else "mrr")
        return float(ours / base) if base > 0 else float("nan")

    def table(self) -> pd.DataFrame:
        rows = []
        for name, r in self.results.items():
            rows.append(
                {
                    "model": name,
                    HR: r.hr,
                    MRR: r.mrr,
                    "fit_s": r.fit_s,
                    "hr_vs_cooccurrence": r.hr / self.results[COOCCURRENCE].hr
                    if self.results[COOCCURRENCE].hr > 0
                    else float("nan"),
                }
            )
        return pd.DataFrame(rows)


def split_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test rows: the file's ``split`` column, else the last 10 % of sessions."""
    split = frame[SPLIT] if SPLIT in frame.columns else time_split(frame)
    train = frame[split.to_numpy() == SPLIT_TRAIN]
    test = frame[split.to_numpy() == SPLIT_TEST]
    if train.empty:
        raise ValueError("no training sessions: the split leaves nothing to fit on")
    return train, test


def evaluate_sessions(
    train_frame: pd.DataFrame,
    test_frame: pd.DataFrame,
    max_sessions: int | None = None,
    seed: int = 42,
    config: SessionKNNConfig | None = None,
    do_tune: bool = True,
) -> SessionEvaluation:
    """Fit the baselines and the session model on train, rank each test session's last item.

    Parameters
    ----------
    train_frame, test_frame
        Normalised session frames (:func:`recsys.session.data.check_session_frame`).
    max_sessions
        Evaluate at most this many test sessions (a seeded random sample).
    config
        The session model's hyper-parameters; with ``do_tune`` they are the grid's base and
        the grid's winner on the validation slice of train is used.
    """
    items = pd.Index(np.unique(train_frame[ITEM_ID].to_numpy()))
    n_items = len(items)
    train = to_sessions(train_frame, items)
    cases = last_item_cases(to_sessions(test_frame, items))
    if max_sessions is not None:
        cases = subsample_cases(cases, max_sessions, seed)
    return evaluate_cases(train, cases, n_items, items, config, do_tune)


def evaluate_cases(
    train: Sessions,
    cases: Cases,
    n_items: int,
    items: pd.Index,
    config: SessionKNNConfig | None = None,
    do_tune: bool = True,
) -> SessionEvaluation:
    """:func:`evaluate_sessions` on encoded sessions and cases."""
    tuning = (
        tune(train, n_items, config)
        if do_tune
        else TuningResult(config or SessionKNNConfig(), 0, [], tuned=False)
    )
    pop_key = popularity_key(item_counts(train, n_items))
    knn = SessionKNN(tuning.config).fit(train, n_items)
    models = [
        Popularity().fit(train, n_items),
        Cooccurrence().fit(train, n_items),
        knn,
        SessionStan(tuning.hybrid, tuning.config).fit(train, n_items, table=knn),
    ]
    results = {m.name: evaluate_model(m, cases, pop_key) for m in models}
    return SessionEvaluation(cases.n, results, tuning, models[-1], items)  # type: ignore[arg-type]
