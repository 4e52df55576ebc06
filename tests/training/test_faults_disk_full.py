"""A full disk while a run writes its artifact (issue #7, item 5).

The artifact store is a real tmpfs of ``STORE_KB`` (mounted by the fixture; we run as
root), so the write fails with a real ENOSPC from the kernel, not a mock. The first
version (``SMALL`` components) fits; the next run (``LARGE`` components) does not. The
run must end ``failed`` with the error, leave no partial artifact (not even the hidden
temporary directory, and no bytes: the store's usage is back to what the first version
takes), create no version, and the first version must keep loading and serving. A run
that fits afterwards must succeed: the failure wedged nothing.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from recommender.artifact_store import local_artifact_path
from recommender.artifacts import load_artifact
from recommender.models import ModelVersion, PromotionEvent, Recommender, Scope, VersionStatus
from recommender.services import demo_data_generate
from recommender.serving.registry import registry
from training.models import RunStatus, Trigger
from training.runner import training_run_execute_now

pytestmark = pytest.mark.django_db

STORE_KB = 192
SMALL, LARGE = 2, 192  # no_components: ~60 kB of artifact vs. ~330 kB


def used_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


def tree(root: Path) -> list[str]:
    """Every path under ``root``, hidden ones included, relative and sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def tiny_store(settings, tmp_path) -> Iterator[Path]:
    """A ``STORE_KB`` tmpfs as ``RECSITE_ARTIFACT_DIR``, unmounted at teardown."""
    store = tmp_path / "artifacts"
    store.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={STORE_KB}k,mode=0755", "tmpfs", str(store)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(
            "a real ENOSPC needs a small tmpfs, and mounting one is not permitted here "
            f"(needs root / CAP_SYS_ADMIN): {mounted.stderr.strip()}"
        )
    settings.RECSITE_ARTIFACT_DIR = store
    try:
        yield store
    finally:
        registry.reset()  # drop the memory maps of the artifacts
        # Lazy: a memory map still held by a collected-later object must not fail teardown.
        subprocess.run(["umount", "--lazy", str(store)], check=True)


@pytest.fixture
def recommender(tiny_store) -> Recommender:
    demo_data_generate(users=150, items=80, events=6000, seed=7, days=28)
    recommender = Recommender.objects.get(name="default")
    recommender.algorithm = "lightfm"
    recommender.hyperparameters = {"lightfm": {"epochs": 3, "no_components": SMALL}}
    # Gates are not under test: every run that writes its artifact is promoted.
    recommender.gate_min_lift_over_popularity = -1.0
    recommender.champion_tolerance = 1.0
    recommender.champion_no_overlap_policy = "skip"  # the runs share their data
    recommender.save()
    return recommender


def test_a_full_disk_fails_the_run_cleanly_and_the_active_version_keeps_serving(
    recommender, tiny_store, make_api_client
):
    first = training_run_execute_now(recommender=recommender, trigger=Trigger.CLI)
    assert first.status == RunStatus.SUCCEEDED, first.error
    v1 = first.version
    assert v1.status == VersionStatus.ACTIVE
    after_v1, files_v1 = used_bytes(tiny_store), tree(tiny_store)
    # The large run's embeddings alone (4 bytes x LARGE x (users + items + features))
    # exceed what is left: the write must hit ENOSPC.
    artifact = load_artifact(local_artifact_path(v1.artifact_uri))
    rows = sum(artifact.arrays[name].shape[0] for name in artifact.arrays if "embed" in name)
    assert 4 * LARGE * rows > STORE_KB * 1024 - after_v1

    run = training_run_execute_now(
        recommender=recommender,
        trigger=Trigger.CLI,
        options={"overrides": {"no_components": LARGE}},
    )

    print(
        f"tmpfs {STORE_KB} kB: v1 takes {after_v1 // 1024} kB; the {LARGE}-component run: "
        f"{run.status} ({run.error}); {used_bytes(tiny_store) // 1024} kB used afterwards"
    )
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("artifact: ArtifactError: no space left on the device"), run.error
    assert "(No space left on device); the partial files were removed" in run.error
    assert "Traceback" in run.traceback and run.version is None
    assert tree(tiny_store) == files_v1  # no partial artifact, no hidden temporary directory
    assert used_bytes(tiny_store) == after_v1  # and none of its bytes
    assert list(ModelVersion.objects.all()) == [v1]
    assert PromotionEvent.objects.count() == 1
    v1.refresh_from_db()
    assert v1.status == VersionStatus.ACTIVE

    load_artifact(local_artifact_path(v1.artifact_uri), verify=True)
    client = make_api_client(Scope.RECOMMENDATIONS_READ)
    user = str(artifact.id_maps["users"][0])
    response = client.get(f"/api/v1/recommendations/{user}")
    assert response.status_code == 200, response.content
    assert (response.json()["model_version"], response.json()["fallback"]) == (1, None)
    serving = client.get("/readyz").json()["checks"]["serving"]["recommenders"]["default"]
    assert (serving["loaded_version"], serving["last_load_error"]) == (1, None)

    again = training_run_execute_now(recommender=recommender, trigger=Trigger.CLI)
    assert again.status == RunStatus.SUCCEEDED, again.error
    assert again.version.number == 2
    registry.refresh()
    assert client.get(f"/api/v1/recommendations/{user}").json()["model_version"] == 2
