"""LightFM hybrid recommender (item and user features) with early stopping on validation."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys.config import DEFAULT_LIGHTFM, LightFMConfig
from recsys.data import Dataset, Holdout
from recsys.metrics import ndcg_at_k
from recsys.models.base import ExportedModel, Recommender
from recsys.ranking import factor_scores, top_k_for_users


@dataclass(frozen=True)
class FactorState:
    """LightFM reduced to per-user / per-item representations (float32).

    ``user_emb`` ``(n_users, d)``, ``user_bias`` ``(n_users,)``, ``item_emb`` ``(n_items, d)``,
    ``item_bias`` ``(n_items,)``.
    """

    user_emb: np.ndarray
    user_bias: np.ndarray
    item_emb: np.ndarray
    item_bias: np.ndarray

    def score_block(self, users: np.ndarray) -> np.ndarray:
        return factor_scores(
            self.user_emb[users], self.user_bias[users], self.item_emb, self.item_bias
        )


def sample_users(users: np.ndarray, max_users: int | None, random_state: int) -> np.ndarray:
    """A seeded, sorted sample of at most ``max_users`` of ``users``."""
    if max_users is None or len(users) <= max_users:
        return users
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(users, size=max_users, replace=False))


def validation_ndcg(
    score_block, holdout: Holdout, k: int, users: np.ndarray, block_size: int = 2048
) -> float:
    """nDCG@k on a validation holdout for the given users (known positives filtered)."""
    idx, _ = top_k_for_users(
        score_block,
        users,
        k,
        known=holdout.dataset.known_positives,
        candidates=np.flatnonzero(holdout.candidates),
        block_size=block_size,
    )
    return ndcg_at_k(idx, holdout.truth[users], k)


def refit_config(config: LightFMConfig, epochs: int) -> LightFMConfig:
    """LightFM's config for a refit from scratch: the epoch count early stopping chose."""
    return dataclasses.replace(config, early_stopping=False, epochs=epochs)


class LightFMRecommender(Recommender):
    """LightFM with the dataset's item and user feature matrices (WARP by default).

    With a validation holdout and ``config.early_stopping``, trains on the validation slice's
    dataset one epoch at a time, records nDCG@k per epoch (``learning_curve_``), stops after
    ``patience`` epochs without improvement (never before ``min_epochs``), then brings in the last days
    (``config.refit``): ``"continue"`` trains the stopped model ``continue_epochs`` more on
    the whole training window, ``"full"`` refits from scratch for the best epoch count.
    ``validation_state_`` keeps the best validation-slice representations (the blend tunes
    its weights on them); ``best_epoch_`` is what a from-scratch refit uses.
    """

    name = "lightfm"

    def __init__(self, config: LightFMConfig = DEFAULT_LIGHTFM) -> None:
        super().__init__()
        self.config = config
        self.learning_curve_: list[dict] = []
        self.best_epoch_: int | None = None
        self.validation_state_: FactorState | None = None
        # called after each epoch of early stopping with (epoch, best epoch so far), and with
        # ``best_epoch_`` as soon as early stopping has chosen it (before the refit on the
        # training window): recsys.pipeline's refit on all data follows both (LockstepRefit)
        self.on_epoch: Callable[[int, int], object] | None = None
        self.on_stopped: Callable[[int], object] | None = None

    # --- LightFM plumbing ----------------------------------------------------------------------
    def _new_model(self):
        from lightfm import LightFM

        c = self.config
        return LightFM(
            no_components=c.no_components,
            loss=c.loss,
            learning_rate=c.learning_rate,
            item_alpha=c.item_alpha,
            user_alpha=c.user_alpha,
            max_sampled=c.max_sampled,
            random_state=np.random.RandomState(c.random_state),
        )

    def _train_inputs(self, ds: Dataset) -> tuple[sp.coo_matrix, sp.coo_matrix | None]:
        x = sp.coo_matrix(ds.interactions, dtype=np.float32)
        positives = sp.coo_matrix(
            (np.ones_like(x.data), (x.row, x.col)), shape=x.shape, dtype=np.float32
        )
        if self.config.sample_weight == "none":
            return positives, None
        w = np.log1p(x.data) if self.config.sample_weight == "log1p" else x.data
        weights = sp.coo_matrix((w.astype(np.float32), (x.row, x.col)), shape=x.shape)
        return positives, weights

    def _fit_epochs(self, model, ds: Dataset, inputs, epochs: int) -> None:
        positives, weights = inputs
        model.fit_partial(
            positives,
            user_features=ds.user_features,
            item_features=ds.item_features,
            sample_weight=weights,
            epochs=epochs,
            num_threads=self.config.num_threads,
        )

    @staticmethod
    def _state(model, ds: Dataset) -> FactorState:
        ub, ue = model.get_user_representations(ds.user_features)
        ib, ie = model.get_item_representations(ds.item_features)
        return FactorState(
            user_emb=np.ascontiguousarray(ue, dtype=np.float32),
            user_bias=np.ascontiguousarray(ub, dtype=np.float32),
            item_emb=np.ascontiguousarray(ie, dtype=np.float32),
            item_bias=np.ascontiguousarray(ib, dtype=np.float32),
        )

    # --- fit -------------------------------------------------------------------------------------
    def _fit(self, dataset: Dataset, validation: Holdout | None) -> None:
        c = self.config
        self.learning_curve_ = []
        epochs = c.epochs
        if c.early_stopping and validation is not None and len(validation.eval_users):
            epochs = self._early_stopping(validation)
            vds = validation.dataset
            same_space = list(vds.item_feature_names) == list(dataset.item_feature_names) and list(
                vds.user_feature_names
            ) == list(dataset.user_feature_names)
            if c.refit == "none":
                self.model_ = self._validation_model
                self.state_ = self._state(self.model_, vds)
                return
            if c.refit == "continue" and same_space:
                model = self._validation_model
                self._fit_epochs(model, dataset, self._train_inputs(dataset), c.continue_epochs)
                self.model_ = model
                self.state_ = self._state(model, dataset)
                return
        model = self._new_model()
        self._fit_epochs(model, dataset, self._train_inputs(dataset), epochs)
        self.model_ = model
        self.state_ = self._state(model, dataset)

    def _early_stopping(self, validation: Holdout) -> int:
        c = self.config
        vds = validation.dataset
        users = sample_users(validation.eval_users, c.validation_max_users, c.random_state)
        model = self._new_model()
        inputs = self._train_inputs(vds)
        best, best_epoch, since = -np.inf, 0, 0
        best_state: FactorState | None = None
        for epoch in range(1, c.epochs + 1):
            t0 = time.perf_counter()
            self._fit_epochs(model, vds, inputs, 1)
            fit_s = time.perf_counter() - t0
            state = self._state(model, vds)
            value = validation_ndcg(state.score_block, validation, c.validation_k, users)
            self.learning_curve_.append(
                {
                    "epoch": epoch,
                    f"validation_ndcg@{c.validation_k}": value,
                    "epoch_fit_s": fit_s,
                    "eval_s": time.perf_counter() - t0 - fit_s,
                }
            )
            stop = False
            if value > best + c.min_delta:
                best, best_epoch, since, best_state = value, epoch, 0, state
            else:
                since += 1
                stop = since >= c.patience and epoch >= c.min_epochs
            if self.on_epoch is not None:
                self.on_epoch(epoch, best_epoch)
            if stop:
                break
        self.best_epoch_ = max(best_epoch, 1)
        self.validation_state_ = best_state if best_state is not None else state
        self._validation_model = model
        if self.on_stopped is not None:
            self.on_stopped(self.best_epoch_)
        return self.best_epoch_

    # --- scoring -------------------------------------------------------------------------------
    def score_block(self, users: np.ndarray) -> np.ndarray:
        return self.state_.score_block(users)

    def export(self) -> ExportedModel:
        s = self.state_
        m = self.model_
        return ExportedModel(
            kind="factors",
            user_embeddings=s.user_emb,
            user_biases=s.user_bias,
            item_embeddings=s.item_emb,
            item_biases=s.item_bias,
            extra={
                "user_feature_embeddings": np.asarray(m.user_embeddings, dtype=np.float32),
                "user_feature_biases": np.asarray(m.user_biases, dtype=np.float32),
                "item_feature_embeddings": np.asarray(m.item_embeddings, dtype=np.float32),
                "item_feature_biases": np.asarray(m.item_biases, dtype=np.float32),
            },
            params={"name": self.name, "best_epoch": self.best_epoch_},
        )


class LockstepRefit:
    """A LightFM refit from scratch on ``dataset`` that trains beside early stopping.

    The refit on all data needs the epoch count early stopping chooses; started only then,
    it was the last thing training waited for, on one core (~15 s of ``make run``). The
    count early stopping ends with is its last best epoch, and its best epoch only moves
    forward, so every epoch up to the best so far is needed: this refit trains up to it while
    early stopping trains on, and never past it (no epoch is wasted). Once early stopping has
    chosen ``E`` it trains on to ``E`` if it is not there yet. The result is the same as
    ``LightFMRecommender(replace(config, early_stopping=False, epochs=E)).fit(dataset)``:
    LightFM draws from its random state per epoch only, so E epochs one at a time are E
    epochs in one call.

    Feed it :meth:`seen` (as ``LightFMRecommender.on_epoch``) and :meth:`stopped` (as
    ``on_stopped``); run :meth:`run` in a thread; :meth:`cancel` makes it return None (early
    stopping did not happen or failed).
    """

    def __init__(self, config: LightFMConfig, dataset: Dataset) -> None:
        self.config = config
        self.dataset = dataset
        self._cond = threading.Condition()
        self._best = 0  # early stopping's best epoch so far
        self._final: int | None = None
        self._cancelled = False

    def seen(self, epoch: int, best_epoch: int) -> None:
        """Early stopping evaluated ``epoch``; its best so far is ``best_epoch``."""
        with self._cond:
            self._best = best_epoch
            self._cond.notify_all()

    def stopped(self, best_epoch: int) -> None:
        with self._cond:
            self._final = max(best_epoch, 1)
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def run(self) -> LightFMRecommender | None:
        t0 = time.perf_counter()
        rec = LightFMRecommender(dataclasses.replace(self.config, early_stopping=False))
        model = rec._new_model()
        inputs = rec._train_inputs(self.dataset)
        done = 0
        while True:
            with self._cond:
                while not (self._cancelled or self._final is not None or done < self._best):
                    self._cond.wait()
                if self._cancelled:
                    return None
                final = self._final
                if final is not None and done >= final:
                    break
            rec._fit_epochs(model, self.dataset, inputs, 1)
            done += 1
        rec.config = refit_config(self.config, final)
        rec.dataset_ = self.dataset
        rec.model_ = model
        rec.state_ = rec._state(model, self.dataset)
        rec.fit_s_ = time.perf_counter() - t0
        return rec
