"""The store's location and artifact names (plain Python)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender.artifact_store.uri import (
    FileLocation,
    S3Location,
    StoreConfigError,
    artifact_name_check,
    artifact_name_of_key,
    plain_file_name,
    store_location_parse,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("file:///srv/artifacts", FileLocation(Path("/srv/artifacts"))),
        ("file://localhost/srv/a%20b", FileLocation(Path("/srv/a b"))),
        ("s3://models", S3Location("models", "")),
        ("s3://models/", S3Location("models", "")),
        ("s3://models/recsite/prod/", S3Location("models", "recsite/prod")),
    ],
)
def test_store_locations_parse(raw, expected):
    assert store_location_parse(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "/srv/artifacts",  # no scheme
        "file://host/srv",  # a host
        "file:relative",
        "s3://",  # no bucket
        "s3://Bad_Bucket/x",
        "s3://models/../escape",
        "s3://models/a?versionId=1",
        "gs://models/x",
    ],
)
def test_unusable_store_locations_are_refused(raw):
    with pytest.raises(StoreConfigError):
        store_location_parse(raw)


def test_s3_keys_put_each_artifact_in_its_own_folder_under_the_prefix():
    location = S3Location("models", "recsite")
    assert location.key("default/run-1-ab", "manifest.json") == (
        "recsite/default/run-1-ab/manifest.json"
    )
    assert location.key("default/run-1-ab") == "recsite/default/run-1-ab/"
    assert S3Location("models", "").key("v1", "a.npy") == "v1/a.npy"


@pytest.mark.parametrize("name", ["default/run-1-ab", "v1", "shop.eu/run_2"])
def test_artifact_names_are_one_or_two_plain_components(name):
    assert artifact_name_check(name) == name


@pytest.mark.parametrize(
    "name", ["", "/abs/path", "a/../b", "../x", "a/b/c", "file:///x", ".hidden/x", "a//b"]
)
def test_other_artifact_names_are_refused(name):
    with pytest.raises(ValueError):
        artifact_name_check(name)


def test_object_keys_map_back_to_artifact_and_file():
    location = S3Location("models", "recsite")
    assert artifact_name_of_key(location, "recsite/default/v1/manifest.json") == (
        "default/v1",
        "manifest.json",
    )
    assert artifact_name_of_key(location, "recsite/v1/a.npy") == ("v1", "a.npy")
    assert artifact_name_of_key(location, "recsite/a/b/c/d.npy") is None  # too deep
    assert artifact_name_of_key(location, "recsite/stray.txt") is None  # no folder
    assert artifact_name_of_key(location, "elsewhere/v1/a.npy") is None


@pytest.mark.parametrize(
    ("name", "plain"),
    [("items.npy", True), ("../x", False), (".hidden", False), ("a/b", False), (3, False)],
)
def test_manifest_file_names_must_be_plain(name, plain):
    assert plain_file_name(name) is plain
