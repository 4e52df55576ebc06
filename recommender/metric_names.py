"""The evaluation metrics' names: one definition for the code that computes them
(``training.pipeline.metrics``), the configuration that picks the key metric
(``recommender.config_schema``) and the pages that show them. Plain Python, no Django.

A recommender names its key metric as ``precision_at_k``; a run stores it under
``precision@10`` (k = the recommender's ``eval_k``)."""

from __future__ import annotations

# Metrics measured on each user's top k, in the order the tables show them.
AT_K_METRICS = ("precision", "recall", "ndcg", "map", "coverage")
# Metrics over the whole ranking.
WHOLE_RANKING_METRICS = ("auc",)
# What a recommender's ``key_metric`` may be.
KEY_METRICS = (*(f"{name}_at_k" for name in AT_K_METRICS), *WHOLE_RANKING_METRICS)


def metric_key(name: str, k: int) -> str:
    """``precision_at_k`` (or ``precision``) -> ``precision@10``; ``auc`` unchanged."""
    base = name.removesuffix("_at_k")
    return f"{base}@{k}" if base in AT_K_METRICS else name
