import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from recommender.artifacts import (
    ArtifactError,
    ArtifactMeta,
    artifact_name_new,
    delete_artifact,
    load_artifact,
    memory_mapped,
    partial_artifacts_sweep,
    write_artifact,
)
from recommender.exceptions import RecsiteError

N_USERS, N_ITEMS, DIM, N_FEATURES = 3, 4, 2, 6


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "user_embeddings": rng.random((N_USERS, DIM)),  # float64: coerced to float32
        "user_biases": rng.random(N_USERS),
        "item_embeddings": rng.random((N_ITEMS, DIM)),
        "item_biases": rng.random(N_ITEMS),
        "item_feature_embeddings": rng.random((N_FEATURES, DIM)),
        "item_feature_biases": rng.random(N_FEATURES),
        "popularity": np.array([5, 0, 2, 1]),
        "seen_indptr": np.array([0, 1, 1, 3]),
        "seen_indices": np.array([2, 0, 3]),
    }


ID_MAPS = {"users": ["u1", "u2", "u3"], "items": np.array(["a", "b", "c", "ü-é"])}
META = ArtifactMeta(
    hyperparameters={"no_components": DIM, "loss": "warp"},
    metrics={"precision@10": 0.25},
    feature_names={"item": ["cat:x", "tag:y"]},
    extra={"recommender": "default"},
)


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    return write_artifact(tmp_path, "v1", _arrays(), ID_MAPS, META).path


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def _save_manifest(path: Path, manifest: dict) -> None:
    (path / "manifest.json").write_text(json.dumps(manifest))


def _replace_file(path: Path, key: str, array: np.ndarray, *, update_shape: bool = False) -> None:
    """Swap one array file and re-sign it in the manifest, as a careful attacker would."""
    manifest = _manifest(path)
    if key.startswith("ids_"):  # ids_<map>_<part>
        _, id_map, part = key.split("_")
        entry = manifest["id_maps"][id_map][part]
    else:
        entry = manifest["arrays"][key]
    target = path / entry["file"]
    np.save(target, array, allow_pickle=True)
    data = target.read_bytes()
    manifest["files"][entry["file"]] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    if update_shape:
        entry["shape"] = list(array.shape)
    _save_manifest(path, manifest)


def _code(exc_info: pytest.ExceptionInfo) -> str:
    return exc_info.value.code


def test_round_trip(tmp_path: Path):
    info = write_artifact(tmp_path, "v1", _arrays(), ID_MAPS, META)
    assert info.path == tmp_path / "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1"]  # no temp dir left behind
    manifest_bytes = (info.path / "manifest.json").read_bytes()
    assert info.sha256 == hashlib.sha256(manifest_bytes).hexdigest()
    assert info.size_bytes == sum(p.stat().st_size for p in info.path.iterdir())

    loaded = load_artifact(info.path)
    expected = _arrays()
    for name, arr in expected.items():
        np.testing.assert_allclose(loaded.arrays[name], arr.astype(loaded.arrays[name].dtype))
    assert loaded.arrays["user_embeddings"].dtype == np.float32
    assert loaded.arrays["seen_indptr"].dtype == np.int64
    assert loaded.arrays["seen_indices"].dtype == np.int32
    assert memory_mapped(loaded.arrays["item_embeddings"])
    assert not loaded.arrays["item_embeddings"].flags.writeable
    assert loaded.id_maps["users"].tolist() == ["u1", "u2", "u3"]
    assert loaded.id_maps["items"].tolist() == ["a", "b", "c", "ü-é"]
    assert loaded.sha256 == info.sha256
    assert loaded.hyperparameters == {"no_components": DIM, "loss": "warp"}
    assert loaded.metrics == {"precision@10": 0.25}
    assert loaded.feature_names == {"item": ["cat:x", "tag:y"]}
    manifest = loaded.manifest
    assert manifest["format_version"] == 2
    assert manifest["arrays"]["item_embeddings"] == {
        "file": "item_embeddings.npy",
        "shape": [N_ITEMS, DIM],
        "dtype": "<f4",
    }
    assert set(manifest["files"]) == {p.name for p in info.path.iterdir()} - {"manifest.json"}


def test_load_without_mmap_gives_plain_arrays(artifact: Path):
    loaded = load_artifact(artifact, mmap=False)
    assert not memory_mapped(loaded.arrays["popularity"])
    assert loaded.arrays["popularity"].tolist() == [5, 0, 2, 1]


def test_artifact_error_is_a_domain_error_with_a_code(artifact: Path):
    (artifact / "popularity.npy").unlink()
    with pytest.raises(RecsiteError) as exc:
        load_artifact(artifact)
    assert isinstance(exc.value, ArtifactError)
    assert _code(exc) == "missing_file"


def test_flipped_byte_fails_the_checksum(artifact: Path):
    target = artifact / "item_embeddings.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ArtifactError) as exc:
        load_artifact(artifact)
    assert _code(exc) == "checksum_mismatch"
    assert "item_embeddings.npy" in str(exc.value)


def test_truncated_file_is_refused(artifact: Path):
    target = artifact / "user_embeddings.npy"
    target.write_bytes(target.read_bytes()[:-4])
    with pytest.raises(ArtifactError) as exc:
        load_artifact(artifact)
    assert _code(exc) == "size_mismatch"
    with pytest.raises(ArtifactError) as exc:
        load_artifact(artifact, verify=False)
    assert _code(exc) == "corrupt_file"


def test_pickled_object_array_is_refused_even_when_re_signed(artifact: Path):
    _replace_file(artifact, "ids_items_blob", np.array([97, 98, 99, {"evil": 1}], dtype=object))
    with pytest.raises(ArtifactError) as exc:
        load_artifact(artifact)
    assert _code(exc) == "pickle_refused"


def test_object_dtype_in_manifest_is_refused(artifact: Path):
    manifest = _manifest(artifact)
    manifest["id_maps"]["items"]["blob"]["dtype"] = "|O"
    _save_manifest(artifact, manifest)
    with pytest.raises(ArtifactError) as exc:
        load_artifact(artifact)
    assert _code(exc) == "pickle_refused"


def test_writing_object_arrays_is_refused(tmp_path: Path):
    arrays = _arrays() | {"popularity": np.array([1, None, 2, 3], dtype=object)}
    with pytest.raises(ArtifactError) as exc:
        write_artifact(tmp_path, "v1", arrays, ID_MAPS, META)
    assert _code(exc) == "pickle_refused"


@pytest.mark.parametrize("bad_name", ["../x", "/etc/passwd", "..", "sub/popularity.npy"])
def test_manifest_paths_escaping_the_folder_are_refused(artifact: Path, bad_name: str):
    outside = artifact.parent / "x"
    np.save(outside, np.zeros(N_ITEMS, dtype=np.float32))
    manifest = _manifest(artifact)
    manifest["arrays"]["popularity"]["file"] = bad_name
    manifest["files"][bad_name] = manifest["files"].pop("popularity.npy")
    _save_manifest(artifact, manifest)
    with pytest.raises(ArtifactError) as exc:
        load_artifact(artifact, verify=False)
    assert _code(exc) == "path_escape"


def test_symlink_out_of_the_folder_is_refused(artifact: Path, tmp_path: Path):
    outside = tmp_path / "outside.npy"
    (artifact / "popularity.npy").rename(outside)
    (artifact / "popularity.npy").symlink_to(outside)
    with pytest.raises(ArtifactError) as exc:
        load_artifact(artifact)
    assert _code(exc) == "path_escape"


def test_file_shape_differing_from_manifest_is_refused(artifact: Path):
    _replace_file(artifact, "popularity", np.zeros(N_ITEMS + 1, dtype=np.float32))
    with pytest.raises(ArtifactError) as exc:
        load_artifact(artifact)
    assert _code(exc) == "shape_mismatch"


def test_arrays_inconsistent_with_each_other_are_refused(artifact: Path):
    # file and manifest agree, but popularity no longer has one entry per item
    _replace_file(
        artifact, "popularity", np.zeros(N_ITEMS + 1, dtype=np.float32), update_shape=True
    )
    with pytest.raises(ArtifactError) as exc:
        load_artifact(artifact)
    assert _code(exc) == "shape_mismatch"
    assert "popularity" in str(exc.value)


def test_wrong_dtype_is_refused(artifact: Path):
    _replace_file(artifact, "popularity", np.zeros(N_ITEMS, dtype=np.float64))
    with pytest.raises(ArtifactError) as exc:
        load_artifact(artifact)
    assert _code(exc) == "dtype_mismatch"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"format_version": 3}, "unsupported_format"),
        ({"files": []}, "bad_manifest"),
        ({"arrays": {}}, "bad_manifest"),
    ],
)
def test_bad_manifests_are_refused(artifact: Path, change: dict, code: str):
    _save_manifest(artifact, _manifest(artifact) | change)
    with pytest.raises(ArtifactError) as exc:
        load_artifact(artifact)
    assert _code(exc) == code


def test_manifest_that_is_not_json_is_refused(artifact: Path):
    (artifact / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError) as exc:
        load_artifact(artifact)
    assert _code(exc) == "bad_manifest"


def test_write_refuses_inconsistent_shapes(tmp_path: Path):
    arrays = _arrays() | {"item_biases": np.zeros(N_ITEMS - 1)}
    with pytest.raises(ArtifactError) as exc:
        write_artifact(tmp_path, "v1", arrays, ID_MAPS, META)
    assert _code(exc) == "shape_mismatch"
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_an_existing_version_and_bad_names(artifact: Path):
    with pytest.raises(ArtifactError) as exc:
        write_artifact(artifact.parent, "v1", _arrays(), ID_MAPS, META)
    assert _code(exc) == "already_exists"
    with pytest.raises(ArtifactError) as exc:
        write_artifact(artifact.parent, "../v2", _arrays(), ID_MAPS, META)
    assert _code(exc) == "bad_name"


def test_failed_write_leaves_nothing_behind(tmp_path: Path):
    meta = ArtifactMeta(metrics={"auc": float("nan")})  # not JSON: fails at the manifest
    with pytest.raises(ArtifactError) as exc:
        write_artifact(tmp_path, "v1", _arrays(), ID_MAPS, meta)
    assert _code(exc) == "bad_manifest"
    assert list(tmp_path.iterdir()) == []


def test_delete_artifact(artifact: Path):
    assert delete_artifact(artifact) is True
    assert list(artifact.parent.iterdir()) == []
    assert delete_artifact(artifact) is False


def test_delete_refuses_a_directory_that_is_not_an_artifact(tmp_path: Path):
    (tmp_path / "precious").mkdir()
    with pytest.raises(ArtifactError) as exc:
        delete_artifact(tmp_path / "precious")
    assert _code(exc) == "not_an_artifact"
    assert (tmp_path / "precious").exists()


def test_partial_directories_of_killed_writers_are_swept_once_old(artifact: Path):
    root = artifact.parent
    old_partials = [root / ".run-7.tmp-abc123", root / ".run-3.deleting-x9"]
    fresh_partial = root / ".run-8.tmp-def456"
    for path in (*old_partials, fresh_partial):
        path.mkdir()
        (path / "item_embeddings.npy").write_bytes(b"half")
    for path in (*old_partials, artifact):  # an hour old, the artifact too
        os.utime(path, (time.time() - 3600, time.time() - 3600))

    removed = partial_artifacts_sweep(root, older_than=600)

    assert sorted(removed) == sorted(old_partials)
    assert fresh_partial.exists()  # maybe a live writer
    assert load_artifact(artifact).sha256  # real artifacts are never touched
    assert partial_artifacts_sweep(root / "missing", older_than=0) == []


def test_the_sweep_looks_in_the_recommender_folders_where_training_writes(tmp_path: Path):
    folder = tmp_path / "default"  # training writes <root>/<recommender>/<name>
    artifact = write_artifact(folder, "run-1-a", _arrays(), ID_MAPS, META).path
    partial = folder / ".run-2-b.tmp-x1y2"
    partial.mkdir()
    (partial / "user_embeddings.npy").write_bytes(b"half")
    written = partial.stat().st_mtime

    assert partial_artifacts_sweep(tmp_path, older_than=600, now=written + 599) == []
    assert partial_artifacts_sweep(tmp_path, older_than=600, now=written + 601) == [partial]
    assert load_artifact(artifact).sha256


def test_artifact_names_are_unique_and_keep_their_label():
    names = {artifact_name_new("run-7") for _ in range(100)}
    assert len(names) == 100
    assert all(name.startswith("run-7-") and len(name) == len("run-7-") + 32 for name in names)
    with pytest.raises(ArtifactError) as caught:
        artifact_name_new("../escape")
    assert caught.value.code == "bad_name"


# --- id maps: a UTF-8 blob + offsets (format 2) ------------------------------------------


def test_id_maps_are_a_memory_mapped_blob_and_offsets(artifact: Path):
    loaded = load_artifact(artifact)
    items = loaded.id_maps["items"]
    assert memory_mapped(items.blob) and memory_mapped(items.offsets)
    assert items.blob.dtype == np.uint8 and items.offsets.dtype == np.int64
    assert bytes(items.blob) == "abcü-é".encode()
    assert items.offsets.tolist() == [0, 1, 2, 3, 8]
    assert sorted(p.name for p in artifact.glob("ids_*")) == [
        "ids_items_blob.npy",
        "ids_items_offsets.npy",
        "ids_users_blob.npy",
        "ids_users_offsets.npy",
    ]


def test_one_long_id_does_not_widen_the_others_on_disk(tmp_path: Path):
    """Format 1 stored ids as fixed-width unicode: one 255-character id made every id
    take 1,020 bytes (ids_users.npy 18x larger). Now the id files grow by that id only."""
    users = [f"user-{n:05d}" for n in range(2_000)]
    sizes = {}
    for name, extra in (("short", "user-x"), ("long", "u" * 255)):
        arrays = _arrays()
        n_users = len(users) + 1
        arrays |= {
            "user_embeddings": np.zeros((n_users, DIM)),
            "user_biases": np.zeros(n_users),
            "seen_indptr": np.zeros(n_users + 1, dtype=np.int64),
            "seen_indices": np.zeros(0, dtype=np.int32),
        }
        path = write_artifact(tmp_path, name, arrays, ID_MAPS | {"users": [*users, extra]}, META)
        sizes[name] = sum(p.stat().st_size for p in path.path.glob("ids_users_*"))
    assert sizes["long"] - sizes["short"] == 255 - len("user-x")


def _resealed_file(path: Path, filename: str, array: np.ndarray) -> None:
    np.save(path / filename, array)
    manifest = _manifest(path)
    data = (path / filename).read_bytes()
    manifest["files"][filename] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    _save_manifest(path, manifest)


@pytest.mark.parametrize(
    ("filename", "array"),
    [
        ("ids_items_offsets.npy", np.array([0, 2, 1, 3, 8], dtype=np.int64)),  # decreasing
        ("ids_items_offsets.npy", np.array([0, 1, 2, 3, 7], dtype=np.int64)),  # short of blob
        ("ids_items_offsets.npy", np.array([0, 1, 2, 4, 8], dtype=np.int64)),  # cuts "ü"
        ("ids_items_blob.npy", np.frombuffer(b"abc\xff-\xc3\xa9x", dtype=np.uint8)),  # not UTF-8
    ],
)
def test_inconsistent_id_maps_are_refused_even_when_re_signed(
    artifact: Path, filename: str, array: np.ndarray
):
    _resealed_file(artifact, filename, array)
    with pytest.raises(ArtifactError) as exc:
        load_artifact(artifact)
    assert _code(exc) == "corrupt_file"


def test_format_1_artifacts_with_unicode_id_arrays_still_load(artifact: Path):
    """Artifacts written before the blob format (format 1) keep serving after an upgrade."""
    manifest = _manifest(artifact)
    for name, ids in (("users", ID_MAPS["users"]), ("items", ID_MAPS["items"])):
        legacy = np.asarray(ids, dtype=np.str_)
        filename = f"ids_{name}.npy"
        np.save(artifact / filename, legacy)
        data = (artifact / filename).read_bytes()
        for part in ("blob", "offsets"):
            del manifest["files"][f"ids_{name}_{part}.npy"]
            (artifact / f"ids_{name}_{part}.npy").unlink()
        manifest["files"][filename] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
        manifest["id_maps"][name] = {
            "file": filename,
            "shape": list(legacy.shape),
            "dtype": legacy.dtype.str,
        }
    manifest["format_version"] = 1
    _save_manifest(artifact, manifest)
    loaded = load_artifact(artifact)
    assert loaded.id_maps["users"].tolist() == ["u1", "u2", "u3"]
    assert loaded.id_maps["items"].tolist() == ["a", "b", "c", "ü-é"]
