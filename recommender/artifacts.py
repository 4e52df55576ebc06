"""The model artifact format: one directory per version, ``.npy`` arrays + ``manifest.json``.

Layout of ``<root>/<name>/``::

    manifest.json             format_version, created_at, name, family, arrays, id_maps,
                              files, hyperparameters, metrics, feature_names, extra
    (factor families: lightfm, als, svd)
    user_embeddings.npy       float32 (n_users, d)
    user_biases.npy           float32 (n_users,)
    item_embeddings.npy       float32 (n_items, d)
    item_biases.npy           float32 (n_items,)
    (families with item features: lightfm)
    item_feature_embeddings.npy  float32 (n_item_features, d)
    item_feature_biases.npy   float32 (n_item_features,)
    item_term_idf.npy         float32 (n_terms,)   optional: the idf of each ``term:``
                              feature, in feature-name order, when the model has title
                              terms as features (``recommender.text_features``)
    (item-item families: ease, itemknn; the top-k item x item matrix as CSR parts: row i
    holds the weights of the items that item i recommends, a user's score is their history
    times it, recommender.family_scoring)
    similarity_data.npy       float32 (nnz,)
    similarity_indices.npy    int32 (nnz,)
    similarity_indptr.npy     int64 (n_items + 1,)
    (score families: popularity)
    item_scores.npy           float32 (n_items,)    the same score for every user
    (every family)
    popularity.npy            float32 (n_items,)
    seen_indptr.npy           int64 (n_users + 1,)  the train matrix as CSR parts, so
    seen_indices.npy          int32 (nnz,)          serving can filter seen items
    ids_users_blob.npy        uint8 (bytes,)        external ids in index order: their
    ids_users_offsets.npy     int64 (n_users + 1,)  UTF-8 bytes end to end, and where
    ids_items_blob.npy        uint8 (bytes,)        each starts (``recommender.ids``;
    ids_items_offsets.npy     int64 (n_items + 1,)  memory follows the ids' real length)

Which arrays an artifact holds follows its ``family`` (``recommender.families``: its
kind, and whether it uses features). An artifact written before families has no
``family`` in its manifest and is ``lightfm``.

Format 1 (before issue 13) stored each id map as one fixed-width unicode array
(``ids_users.npy``), where one long id set the width of every id; it is still loaded
(the ids are converted in memory, not shared between workers), never written.

Every file is listed in ``manifest["files"]`` with its sha256 and size; the manifest's
own sha256 identifies the artifact. Arrays are never pickles: they are written and read
with ``allow_pickle=False`` and object dtypes are refused before any load, so a tampered
artifact cannot run code. Reads are memory-mapped so all workers on a host share pages.

No settings: callers pass the directory in.
"""

from __future__ import annotations

import errno
import hashlib
import json
import mmap
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from recommender.exceptions import RecsiteError
from recommender.families import FAMILIES, Algorithm, FamilyKind
from recommender.ids import IdArray, id_array_check

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 256 * 1024 * 1024

ARRAY_DTYPES: dict[str, np.dtype] = {
    "user_embeddings": np.dtype("<f4"),
    "user_biases": np.dtype("<f4"),
    "item_embeddings": np.dtype("<f4"),
    "item_biases": np.dtype("<f4"),
    "item_feature_embeddings": np.dtype("<f4"),
    "item_feature_biases": np.dtype("<f4"),
    "popularity": np.dtype("<f4"),
    "seen_indptr": np.dtype("<i8"),
    "seen_indices": np.dtype("<i4"),
    "similarity_data": np.dtype("<f4"),
    "similarity_indices": np.dtype("<i4"),
    "similarity_indptr": np.dtype("<i8"),
    "item_scores": np.dtype("<f4"),
    "item_term_idf": np.dtype("<f4"),
}
"""Every array some family writes, with its dtype; ``family_arrays`` says which."""
COMMON_ARRAYS = ("popularity", "seen_indptr", "seen_indices")
KIND_ARRAYS: dict[FamilyKind, tuple[str, ...]] = {
    FamilyKind.FACTORS: ("user_embeddings", "user_biases", "item_embeddings", "item_biases"),
    FamilyKind.ITEM_ITEM: ("similarity_data", "similarity_indices", "similarity_indptr"),
    FamilyKind.SCORES: ("item_scores",),
}
FEATURE_ARRAYS = ("item_feature_embeddings", "item_feature_biases")
# Written only when there is something to write (families with features).
OPTIONAL_FEATURE_ARRAYS = ("item_term_idf",)
FAMILY_BEFORE_FAMILIES = Algorithm.LIGHTFM  # a manifest without "family"
ID_MAPS = ("users", "items")
ID_MAP_PARTS: dict[str, np.dtype] = {"blob": np.dtype("|u1"), "offsets": np.dtype("<i8")}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHUNK = 1024 * 1024


class ArtifactError(RecsiteError):
    """An artifact is missing, malformed or tampered with. ``code`` says which:
    ``missing_file``, ``bad_manifest``, ``checksum_mismatch``, ``size_mismatch``,
    ``shape_mismatch``, ``dtype_mismatch``, ``pickle_refused``, ``path_escape``,
    ``unsupported_format``, ``corrupt_file``, ``already_exists``, ``bad_name``,
    ``not_an_artifact``, ``no_space`` (the disk filled up while writing)."""

    code = "artifact_error"
    status = 500
    default_message = "The model artifact is unusable."

    def __init__(self, code: str, message: str, **detail: Any) -> None:
        super().__init__(message, **detail)
        self.code = code


@dataclass(frozen=True)
class ArtifactInfo:
    path: Path
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class LoadedArtifact:
    """A verified artifact. Arrays are read-only (memory-mapped unless ``mmap=False``)."""

    path: Path
    sha256: str
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]
    id_maps: dict[str, IdArray]

    @property
    def family(self) -> str:
        return self.manifest.get("family", FAMILY_BEFORE_FAMILIES)

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return self.manifest["hyperparameters"]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest["metrics"]

    @property
    def feature_names(self) -> dict[str, list[str]]:
        return self.manifest["feature_names"]


@dataclass(frozen=True)
class ArtifactMeta:
    family: str = FAMILY_BEFORE_FAMILIES
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    feature_names: Mapping[str, Sequence[str]] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


# --- consistency -----------------------------------------------------------------------


def family_arrays(family: Any) -> tuple[str, ...]:
    """The arrays an artifact of ``family`` holds (``ArtifactError`` for an unknown one)."""
    spec = FAMILIES.get(family) if isinstance(family, str) else None
    if spec is None:
        raise ArtifactError(
            "unsupported_family", f"{family!r} is not a model family ({', '.join(FAMILIES)})"
        )
    return (
        *COMMON_ARRAYS,
        *KIND_ARRAYS[spec.kind],
        *(FEATURE_ARRAYS if spec.uses_features else ()),
    )


def _array_names(family: str, present: Any) -> tuple[str, ...]:
    """The arrays of an artifact of ``family`` whose arrays are ``present``: the family's
    own, then the optional ones it may hold that are there. ``ArtifactError`` when one of
    its own is missing or an array is not the family's."""
    names = family_arrays(family)
    optional = OPTIONAL_FEATURE_ARRAYS if FAMILIES[family].uses_features else ()
    present = set(present)
    missing, unknown = set(names) - present, present - set(names) - set(optional)
    if missing or unknown:
        raise ArtifactError(
            "shape_mismatch",
            f"a {family} artifact's arrays must be exactly: "
            + ", ".join(sorted(names))
            + (f" (optionally {', '.join(optional)})" if optional else ""),
            missing=sorted(missing),
            unknown=sorted(unknown),
        )
    return (*names, *(name for name in optional if name in present))


def _check_consistency(
    family: str, shapes: Mapping[str, tuple[int, ...]], n_users: int, n_items: int
) -> None:
    """Cross-array invariants, checked from shapes alone (before and after writing)."""

    def fail(message: str) -> None:
        raise ArtifactError(
            "shape_mismatch", message, shapes={k: list(v) for k, v in shapes.items()}
        )

    for name in shapes:
        ndim = 2 if name.endswith("embeddings") else 1
        if len(shapes[name]) != ndim:
            fail(f"{name} must have {ndim} dimension(s), has shape {shapes[name]}")
    rows = {"popularity": n_items, "seen_indptr": n_users + 1}
    kind = FAMILIES[family].kind
    if kind is FamilyKind.FACTORS:
        rows.update(
            user_embeddings=n_users,
            user_biases=n_users,
            item_embeddings=n_items,
            item_biases=n_items,
        )
    elif kind is FamilyKind.ITEM_ITEM:
        rows.update(similarity_indptr=n_items + 1, similarity_indices=shapes["similarity_data"][0])
    else:
        rows.update(item_scores=n_items)
    if FAMILIES[family].uses_features:
        rows["item_feature_biases"] = shapes["item_feature_embeddings"][0]
    for name, n in rows.items():
        if shapes[name][0] != n:
            fail(f"{name} has {shapes[name][0]} rows, expected {n}")
    if kind is FamilyKind.FACTORS:
        dim = shapes["user_embeddings"][1]
        widths = [
            "item_embeddings",
            *(FEATURE_ARRAYS[:1] if FAMILIES[family].uses_features else ()),
        ]
        for name in widths:
            if shapes[name][1] != dim:
                fail(f"{name} has dimension {shapes[name][1]}, user_embeddings has {dim}")


# --- writing ---------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` of a contiguous non-object array, byte for byte, except that a short
    write raises ``OSError`` with its errno (ENOSPC) instead of ``ndarray.tofile``'s
    "15360 requested and 3040 written"."""
    with path.open("wb") as fh:
        np.lib.format.write_array_header_1_0(fh, np.lib.format.header_data_from_array_1_0(array))
        fh.write(array.reshape(-1).view(np.uint8))
        fh.flush()
        os.fsync(fh.fileno())


def _prepare(
    family: str, arrays: Mapping[str, np.ndarray], id_maps: Mapping[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, IdArray]]:
    """Coerce to the format's dtypes; refuse anything missing, unknown or pickled."""
    names = _array_names(family, arrays)
    if set(id_maps) != set(ID_MAPS):
        raise ArtifactError("shape_mismatch", "id_maps must be exactly: users, items")
    out: dict[str, np.ndarray] = {}
    for name in names:
        dtype = ARRAY_DTYPES[name]
        arr = np.asarray(arrays[name])
        if arr.dtype.hasobject:
            raise ArtifactError("pickle_refused", f"{name} has an object dtype")
        out[name] = np.ascontiguousarray(arr, dtype=dtype)
    ids: dict[str, IdArray] = {}
    for name in ID_MAPS:
        given = id_maps[name]
        if not isinstance(given, IdArray):
            values = given.tolist() if isinstance(given, np.ndarray) else list(given)
            if not all(isinstance(v, str) for v in values):
                raise ArtifactError("dtype_mismatch", f"id map {name} must hold strings")
            given = IdArray.from_strings(values)
        ids[name] = given
    if out["seen_indices"].size and (
        out["seen_indices"].min() < 0 or out["seen_indices"].max() >= len(ids["items"])
    ):
        raise ArtifactError("shape_mismatch", "seen_indices holds an item index out of range")
    neighbours = out.get("similarity_indices")
    if (
        neighbours is not None
        and neighbours.size
        and (neighbours.min() < 0 or neighbours.max() >= len(ids["items"]))
    ):
        raise ArtifactError("shape_mismatch", "similarity_indices holds an item out of range")
    return out, ids


def _id_map_files(name: str, ids: IdArray) -> dict[str, np.ndarray]:
    """The ``.npy`` arrays (by file stem) of one id map in the current format."""
    return {
        f"ids_{name}_blob": np.ascontiguousarray(ids.blob, dtype=ID_MAP_PARTS["blob"]),
        f"ids_{name}_offsets": np.ascontiguousarray(ids.offsets, dtype=ID_MAP_PARTS["offsets"]),
    }


def write_artifact(
    root_dir: str | os.PathLike[str],
    name: str,
    arrays: Mapping[str, np.ndarray],
    id_maps: Mapping[str, np.ndarray | Sequence[str]],
    meta: ArtifactMeta,
) -> ArtifactInfo:
    """Write ``<root_dir>/<name>`` atomically and return its path, sha256 and size.

    Files go into a hidden temporary directory next to the destination, each is fsynced,
    the manifest (with every file's sha256 and size) is written last, the directory is
    fsynced and then renamed into place: readers see either nothing or a complete
    artifact. ``name`` must not exist yet (versions are immutable).
    """
    if not _NAME_RE.match(name):
        raise ArtifactError("bad_name", f"invalid artifact name {name!r}")
    root = Path(root_dir)
    root.mkdir(parents=True, exist_ok=True)
    dest = root / name
    if dest.exists():
        raise ArtifactError("already_exists", f"artifact {dest} already exists")
    prepared, ids = _prepare(meta.family, arrays, id_maps)
    _check_consistency(
        meta.family,
        {k: v.shape for k, v in prepared.items()},
        len(ids["users"]),
        len(ids["items"]),
    )
    array_names = tuple(prepared)
    for map_name, map_ids in ids.items():
        prepared.update(_id_map_files(map_name, map_ids))

    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
    try:
        files: dict[str, dict[str, Any]] = {}
        entries: dict[str, dict[str, Any]] = {}
        for key, arr in prepared.items():
            filename = f"{key}.npy"
            _save_npy(tmp / filename, arr)
            files[filename] = {
                "sha256": _sha256_file(tmp / filename),
                "size": (tmp / filename).stat().st_size,
            }
            entries[key] = {"file": filename, "shape": list(arr.shape), "dtype": arr.dtype.str}
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "created_at": datetime.now(UTC).isoformat(),
            "family": meta.family,
            "arrays": {k: entries[k] for k in array_names},
            "id_maps": {
                m: {part: entries[f"ids_{m}_{part}"] for part in ID_MAP_PARTS} for m in ID_MAPS
            },
            "files": files,
            "hyperparameters": dict(meta.hyperparameters),
            "metrics": dict(meta.metrics),
            "feature_names": {k: list(v) for k, v in meta.feature_names.items()},
            "extra": dict(meta.extra),
        }
        try:
            body = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise ArtifactError("bad_manifest", f"metadata is not plain JSON: {exc}")
        with (tmp / MANIFEST).open("wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(tmp)
        os.rename(tmp, dest)
        _fsync_dir(root)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ArtifactError(
                "no_space",
                f"no space left on the device of {root} while writing artifact {name} "
                f"({exc.strerror}); the partial files were removed",
            ) from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = len(body) + sum(f["size"] for f in files.values())
    return ArtifactInfo(path=dest, sha256=hashlib.sha256(body).hexdigest(), size_bytes=size)


# --- reading ---------------------------------------------------------------------------


def _read_manifest(path: Path) -> tuple[dict[str, Any], str]:
    manifest_path = _resolve(path, MANIFEST)  # a symlink out of the folder is refused too
    if not manifest_path.is_file():
        raise ArtifactError("missing_file", f"{manifest_path} does not exist")
    if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ArtifactError("bad_manifest", "manifest.json is implausibly large")
    body = manifest_path.read_bytes()
    try:
        manifest = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError("bad_manifest", f"manifest.json is not valid JSON: {exc}")
    if not isinstance(manifest, dict):
        raise ArtifactError("bad_manifest", "manifest.json must hold an object")
    if manifest.get("format_version") not in READABLE_FORMATS:
        raise ArtifactError(
            "unsupported_format",
            f"format_version {manifest.get('format_version')!r} is not one of "
            f"{', '.join(map(str, READABLE_FORMATS))}",
        )
    for key, kind in (
        ("arrays", dict),
        ("id_maps", dict),
        ("files", dict),
        ("hyperparameters", dict),
        ("metrics", dict),
        ("feature_names", dict),
    ):
        if not isinstance(manifest.get(key), kind):
            raise ArtifactError("bad_manifest", f"manifest.json: {key!r} missing or malformed")
    try:
        _array_names(manifest.get("family", FAMILY_BEFORE_FAMILIES), manifest["arrays"])
    except ArtifactError as exc:
        if exc.code != "shape_mismatch":
            raise
        raise ArtifactError("bad_manifest", "manifest.json lists the wrong arrays or id maps")
    if set(manifest["id_maps"]) != set(ID_MAPS):
        raise ArtifactError("bad_manifest", "manifest.json lists the wrong arrays or id maps")
    return manifest, hashlib.sha256(body).hexdigest()


def _resolve(root: Path, filename: Any) -> Path:
    """The file ``filename`` inside ``root``; refuse anything that could point elsewhere."""
    if (
        not isinstance(filename, str)
        or not filename
        or filename in (".", "..")
        or "/" in filename
        or "\\" in filename
        or "\x00" in filename
    ):
        raise ArtifactError("path_escape", f"file name {filename!r} is not a plain file name")
    resolved = (root / filename).resolve()
    if resolved.parent != root.resolve():
        raise ArtifactError("path_escape", f"{filename!r} resolves outside the artifact")
    return resolved


def _verify_file(path: Path, expected: Mapping[str, Any]) -> None:
    if not path.is_file():
        raise ArtifactError("missing_file", f"{path.name} is missing", file=path.name)
    size = path.stat().st_size
    if size != expected.get("size"):
        raise ArtifactError(
            "size_mismatch",
            f"{path.name} is {size} bytes, the manifest says {expected.get('size')}",
            file=path.name,
        )
    if _sha256_file(path) != expected.get("sha256"):
        raise ArtifactError("checksum_mismatch", f"{path.name} fails its sha256", file=path.name)


def memory_mapped(array: np.ndarray) -> bool:
    """Whether ``array`` reads a file mapping (shared page cache) rather than memory of
    its own."""
    base: Any = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        base = getattr(base, "base", None)
    return False


def _load_npy(path: Path, entry: Mapping[str, Any], mmap: bool) -> np.ndarray:
    """Read the header first (refusing object dtypes outright), then load without pickle."""
    try:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    except (ValueError, OSError, SyntaxError) as exc:
        raise ArtifactError("corrupt_file", f"{path.name}: unreadable .npy header ({exc})")
    if dtype.hasobject:
        raise ArtifactError("pickle_refused", f"{path.name} holds Python objects (a pickle)")
    if list(shape) != entry.get("shape"):
        raise ArtifactError(
            "shape_mismatch",
            f"{path.name} has shape {list(shape)}, the manifest says {entry.get('shape')}",
        )
    if dtype.str != entry.get("dtype"):
        raise ArtifactError(
            "dtype_mismatch", f"{path.name} is {dtype.str}, the manifest says {entry.get('dtype')}"
        )
    try:
        # A plain ndarray view of the mapping, not the ``np.memmap`` subclass: each slice
        # of a memmap runs Python-level ``__array_finalize__``, several per request.
        return np.asarray(np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None))
    except ValueError as exc:
        raise ArtifactError("corrupt_file", f"{path.name}: {exc}")


def load_artifact(
    path: str | os.PathLike[str],
    verify: bool = True,
    mmap: bool = True,
    expected_sha256: str | None = None,
) -> LoadedArtifact:
    """Load and check an artifact; raise :class:`ArtifactError` rather than return a bad one.

    With ``verify`` every listed file's size and sha256 are checked before anything is
    loaded (serving does this before a swap, promote and rollback before they commit).
    With ``expected_sha256`` (the one recorded on the version) the manifest itself must
    have that digest. Shapes and dtypes are always checked against the manifest, the
    format's fixed dtypes and each other.
    """
    root = Path(path)
    manifest, digest = _read_manifest(root)
    files: dict[str, Any] = manifest["files"]
    entries, expected_dtypes = _entries(manifest)
    for key, entry in entries.items():
        if not isinstance(entry, dict) or entry.get("file") not in files:
            raise ArtifactError("bad_manifest", f"{key}: no file entry with a checksum")
        expected = expected_dtypes.get(key)
        dtype = str(entry.get("dtype"))
        if "O" in dtype:
            raise ArtifactError("pickle_refused", f"{key}: object dtype in the manifest")
        if expected is not None and dtype != expected.str:
            raise ArtifactError("dtype_mismatch", f"{key} must be {expected.str}, not {dtype}")
        if expected is None and not dtype.lstrip("<>|=").startswith("U"):
            raise ArtifactError("dtype_mismatch", f"{key} must hold unicode strings")
    resolved = {name: _resolve(root, name) for name in files}
    if verify:
        for name, record in files.items():
            if not isinstance(record, dict):
                raise ArtifactError("bad_manifest", f"files[{name!r}] malformed")
            _verify_file(resolved[name], record)
    loaded = {key: _load_npy(resolved[e["file"]], e, mmap) for key, e in entries.items()}
    id_maps = {m: _id_map(loaded, m) for m in ID_MAPS}
    family = manifest.get("family", FAMILY_BEFORE_FAMILIES)
    names = _array_names(family, manifest["arrays"])
    _check_consistency(
        family, {k: loaded[k].shape for k in names}, len(id_maps["users"]), len(id_maps["items"])
    )
    # Last, so a damaged file is reported as what it is even when the manifest was
    # rewritten to match it (which this check then catches).
    if expected_sha256 is not None and digest != expected_sha256:
        raise ArtifactError(
            "checksum_mismatch",
            f"the manifest's sha256 {digest[:12]}... is not the one recorded for the "
            f"version ({expected_sha256[:12]}...)",
        )
    return LoadedArtifact(
        path=root,
        sha256=digest,
        manifest=manifest,
        arrays={k: loaded[k] for k in names},
        id_maps=id_maps,
    )


def _entries(manifest: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.dtype]]:
    """Every ``.npy`` entry of the manifest by key, and the dtype each must have (an id
    map of format 1 is a unicode array of any width: not listed)."""
    entries: dict[str, Any] = dict(manifest["arrays"])
    dtypes = dict(ARRAY_DTYPES)
    for name, entry in manifest["id_maps"].items():
        if manifest["format_version"] == 1:
            entries[f"ids_{name}"] = entry
            continue
        if not isinstance(entry, dict) or set(entry) != set(ID_MAP_PARTS):
            raise ArtifactError("bad_manifest", f"id map {name!r} must list: blob, offsets")
        for part, dtype in ID_MAP_PARTS.items():
            entries[f"ids_{name}_{part}"] = entry[part]
            dtypes[f"ids_{name}_{part}"] = dtype
    return entries, dtypes


def _id_map(loaded: Mapping[str, np.ndarray], name: str) -> IdArray:
    """One id map from its loaded arrays, checked (offsets, UTF-8); format 1's unicode
    array is converted (a private copy)."""
    if f"ids_{name}" in loaded:
        legacy = loaded[f"ids_{name}"]
        if legacy.ndim != 1:
            raise ArtifactError("shape_mismatch", f"ids_{name} must have 1 dimension")
        return IdArray.from_strings(legacy.tolist())
    blob, offsets = loaded[f"ids_{name}_blob"], loaded[f"ids_{name}_offsets"]
    problem = id_array_check(blob, offsets)
    if problem is not None:
        raise ArtifactError("corrupt_file", f"id map {name}: {problem}")
    return IdArray(blob, offsets)


def delete_artifact(path: str | os.PathLike[str]) -> bool:
    """Remove an artifact directory; False when it was already gone.

    The directory is first renamed to a hidden name (atomic), so a concurrent reader never
    sees a half-deleted artifact. Refuses directories without a manifest.
    """
    root = Path(path)
    if not root.exists():
        return False
    if not root.is_dir() or not (root / MANIFEST).is_file():
        raise ArtifactError("not_an_artifact", f"{root} is not an artifact directory")
    doomed = Path(tempfile.mkdtemp(prefix=f".{root.name}.deleting-", dir=root.parent))
    os.rename(root, doomed / root.name)
    shutil.rmtree(doomed)
    return True


def artifact_name_new(label: str) -> str:
    """A fresh artifact name, ``<label>-<32 hex digits>``: unique by construction, so it
    never collides with a directory left by a run the database no longer knows (after a
    restore from an older backup the run and version ids start again below numbers
    already used on disk). ``label`` (e.g. ``run-42``) is only for people reading the
    folder."""
    name = f"{label}-{uuid.uuid4().hex}"
    if not _NAME_RE.match(name):
        raise ArtifactError("bad_name", f"invalid artifact label {label!r}")
    return name


def _is_partial(entry: Path) -> bool:
    """A hidden working directory of ``write_artifact`` (``.<name>.tmp-*``) or
    ``delete_artifact`` (``.<name>.deleting-*``)."""
    return (
        entry.name.startswith(".")
        and (".tmp-" in entry.name or ".deleting-" in entry.name)
        and entry.is_dir()
        and not entry.is_symlink()
    )


def partial_artifacts_sweep(
    root_dir: str | os.PathLike[str], older_than: float, now: float | None = None
) -> list[Path]:
    """Remove the hidden working directories (``.<name>.tmp-*``, ``.<name>.deleting-*``)
    left by a process killed while writing or deleting an artifact, once they are
    ``older_than`` seconds old at ``now`` (default: the current time; no live writer
    takes that long). They sit next to the artifact being written: in ``root_dir``
    itself and in each of its folders (``<root>/<recommender>/``, where training writes).
    Loaders never see them; this only gives the disk back. Returns what was removed."""
    root = Path(root_dir)
    if not root.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - older_than
    folders = [root] + sorted(
        entry
        for entry in root.iterdir()
        if not entry.name.startswith(".") and entry.is_dir() and not entry.is_symlink()
    )
    removed = []
    for folder in folders:
        for entry in sorted(folder.iterdir()):
            if _is_partial(entry) and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed
