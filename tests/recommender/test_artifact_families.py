"""The artifact's per-family layouts (recommender/artifacts.py): which arrays a family
writes, the family in the manifest, and manifests written before families."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from recommender.artifacts import ArtifactError, ArtifactMeta, load_artifact, write_artifact

IDS = {"users": ["u1", "u2", "u3"], "items": ["a", "b", "c", "d"]}
COMMON = {
    "popularity": np.array([5, 0, 2, 1]),
    "seen_indptr": np.array([0, 1, 1, 3]),
    "seen_indices": np.array([2, 0, 3]),
}
ITEM_ITEM = {
    "similarity_data": np.array([0.5, 0.25, 1.0]),
    "similarity_indices": np.array([1, 2, 0]),
    "similarity_indptr": np.array([0, 2, 2, 3, 3]),
}
FACTORS = {
    "user_embeddings": np.ones((3, 2)),
    "user_biases": np.zeros(3),
    "item_embeddings": np.ones((4, 2)),
    "item_biases": np.zeros(4),
}


@pytest.mark.parametrize(
    ("family", "arrays"),
    [("ease", ITEM_ITEM), ("itemknn", ITEM_ITEM), ("als", FACTORS), ("svd", FACTORS)]
    + [("popularity", {"item_scores": np.array([1.0, 2.0, 3.0, 4.0])})],
)
def test_each_family_round_trips_with_its_family_in_the_manifest(tmp_path, family, arrays):
    meta = ArtifactMeta(family=family, hyperparameters={"family": family})
    info = write_artifact(tmp_path, "v1", {**COMMON, **arrays}, IDS, meta)
    loaded = load_artifact(info.path, expected_sha256=info.sha256)
    assert loaded.family == family == loaded.manifest["family"]
    assert set(loaded.arrays) == set(COMMON) | set(arrays)


def test_an_artifact_must_hold_exactly_its_familys_arrays(tmp_path):
    with pytest.raises(ArtifactError) as caught:
        write_artifact(
            tmp_path, "v1", {**COMMON, **FACTORS, **ITEM_ITEM}, IDS, ArtifactMeta(family="ease")
        )
    assert caught.value.code == "shape_mismatch"
    assert "a ease artifact's arrays must be exactly" in caught.value.message


def test_an_item_item_matrix_pointing_outside_the_items_is_refused(tmp_path):
    bad = {**ITEM_ITEM, "similarity_indices": np.array([1, 2, 4])}
    with pytest.raises(ArtifactError, match="similarity_indices holds an item out of range"):
        write_artifact(tmp_path, "v1", {**COMMON, **bad}, IDS, ArtifactMeta(family="ease"))


def test_an_item_item_indptr_of_the_wrong_length_is_refused(tmp_path):
    bad = {**ITEM_ITEM, "similarity_indptr": np.array([0, 2, 3])}
    with pytest.raises(ArtifactError, match="similarity_indptr has 3 rows, expected 5"):
        write_artifact(tmp_path, "v1", {**COMMON, **bad}, IDS, ArtifactMeta(family="itemknn"))


def test_a_manifest_without_a_family_is_a_lightfm_artifact(tmp_path):
    lightfm = {
        **FACTORS,
        "item_feature_embeddings": np.ones((5, 2)),
        "item_feature_biases": np.zeros(5),
    }
    info = write_artifact(tmp_path, "v1", {**COMMON, **lightfm}, IDS, ArtifactMeta())
    manifest = json.loads((info.path / "manifest.json").read_text())
    assert manifest["family"] == "lightfm"
    del manifest["family"]  # as written before families existed
    (info.path / "manifest.json").write_text(json.dumps(manifest))
    loaded = load_artifact(info.path)
    assert loaded.family == "lightfm"
    assert loaded.sha256 == hashlib.sha256((info.path / "manifest.json").read_bytes()).hexdigest()


def test_an_unknown_family_is_refused_on_load(tmp_path):
    info = write_artifact(tmp_path, "v1", {**COMMON, **ITEM_ITEM}, IDS, ArtifactMeta(family="ease"))
    manifest_path = Path(info.path) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["family"] = "deep"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError) as caught:
        load_artifact(info.path)
    assert caught.value.code == "unsupported_family"
