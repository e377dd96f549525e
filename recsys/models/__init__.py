"""Recommenders behind one interface: ``fit(dataset, validation)`` then ``recommend(...)``."""

from __future__ import annotations

from recsys.config import DEFAULT_PIPELINE, PipelineConfig
from recsys.models.als import ALSRecommender
from recsys.models.base import ExportedModel, Recommender, reco_frame
from recsys.models.blend import LightFMBlend
from recsys.models.cooccurrence import CooccurrenceRecommender
from recsys.models.lightfm_model import LightFMRecommender
from recsys.models.popularity import (
    CategoryPopularityRecommender,
    PopularityRecommender,
    RecentlyViewedRecommender,
)

MODEL_NAMES: tuple[str, ...] = (
    PopularityRecommender.name,
    CategoryPopularityRecommender.name,
    CooccurrenceRecommender.name,
    ALSRecommender.name,
    RecentlyViewedRecommender.name,
    LightFMRecommender.name,
    LightFMBlend.name,
)


def make_model(name: str, config: PipelineConfig = DEFAULT_PIPELINE) -> Recommender:
    """A fresh, unfitted model by name (one of :data:`MODEL_NAMES`)."""
    if name == PopularityRecommender.name:
        return PopularityRecommender()
    if name == CategoryPopularityRecommender.name:
        return CategoryPopularityRecommender()
    if name == CooccurrenceRecommender.name:
        return CooccurrenceRecommender(config.cooccurrence)
    if name == ALSRecommender.name:
        return ALSRecommender(config.als)
    if name == RecentlyViewedRecommender.name:
        return RecentlyViewedRecommender()
    if name == LightFMRecommender.name:
        return LightFMRecommender(config.lightfm)
    if name == LightFMBlend.name:
        return LightFMBlend(config.lightfm, config.cooccurrence, config.blend, config.als)
    raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")


__all__ = [
    "MODEL_NAMES",
    "ALSRecommender",
    "CategoryPopularityRecommender",
    "CooccurrenceRecommender",
    "ExportedModel",
    "LightFMBlend",
    "LightFMRecommender",
    "PopularityRecommender",
    "RecentlyViewedRecommender",
    "Recommender",
    "make_model",
    "reco_frame",
]
