"""LightFM (Kula 2015): hybrid factors, with item features (identity + categories) and
optionally user features. The artifact holds every user's and item's representation
(features times factors) and the feature embeddings themselves, which serving uses to
score an item the model has not seen from its categories."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from training.families.base import FactorModel, FitContext


def fit(train: sp.csr_matrix, params: dict[str, Any], context: FitContext) -> FactorModel:
    return factor_model(fit_model(train, params, context), context)


def fit_model(train: sp.csr_matrix, params: dict[str, Any], context: FitContext) -> LightFM:
    """Fit one epoch at a time, reporting after each. Every stored entry of ``train`` is
    a positive; its value (the summed event weight) becomes LightFM's ``sample_weight``,
    except for ``warp-kos`` which accepts none."""
    epochs = int(params["epochs"])
    model = LightFM(
        no_components=int(params["no_components"]),
        loss=params["loss"],
        learning_rate=float(params["learning_rate"]),
        item_alpha=float(params["item_alpha"]),
        user_alpha=float(params["user_alpha"]),
        random_state=context.random_seed,
    )
    coo = sp.coo_matrix(train, dtype=np.float32)
    positives = sp.coo_matrix(
        (np.ones_like(coo.data), (coo.row, coo.col)), shape=coo.shape, dtype=np.float32
    )
    sample_weight = None if params["loss"] == "warp-kos" else coo
    for epoch in range(epochs):
        model.fit_partial(
            positives,
            user_features=context.user_features,
            item_features=context.item_features,
            sample_weight=sample_weight,
            epochs=1,
            num_threads=context.num_threads,
        )
        context.progress(epoch + 1, epochs)
    return model


def factor_model(model: LightFM, context: FitContext) -> FactorModel:
    """Every user's and item's representation (features times factors), and the feature
    embeddings themselves."""
    item_biases, item_factors = model.get_item_representations(context.item_features)
    user_biases, user_factors = model.get_user_representations(context.user_features)
    return FactorModel(
        np.asarray(user_factors, np.float32),
        np.asarray(item_factors, np.float32),
        np.asarray(user_biases, np.float32),
        np.asarray(item_biases, np.float32),
        feature_arrays={
            "item_feature_embeddings": np.asarray(model.item_embeddings, np.float32),
            "item_feature_biases": np.asarray(model.item_biases, np.float32),
        },
    )
