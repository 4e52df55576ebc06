"""Large data for the scale benchmarks, written fast and inside Django (the callers run
it in a subprocess with ``django.setup()`` done): catalogue rows with ``COPY``, events
from ``generate_series`` in the database, model versions whose artifacts hold random
factors (written by the real artifact writer, registered and promoted through the
services), and the timing of a serving load.

Imported as ``scale_data`` (the scripts run as ``python bench/<name>.py``)."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime

import numpy as np
from django.db import connection

from recommender.artifact_store import artifact_publish, artifact_staging_dir, local_artifact_path
from recommender.artifacts import ArtifactMeta, artifact_name_new, load_artifact, write_artifact
from recommender.demo_data import (
    CATEGORIES,
    EVENT_TYPES,
    DemoData,
    demo_item_id,
    demo_user_id,
    generate_demo_data,
)
from recommender.features import category_feature_names
from recommender.ids import IdArray, IdIndex
from recommender.models import ModelVersion, Recommender
from recommender.pgcopy import copy_text
from recommender.services.registry import model_version_create, model_version_promote
from recommender.serving.catalog import Catalog, catalog_stamp
from recommender.serving.model import LoadedModel, active_versions
from recommender.serving.state import model_state_build

RECOMMENDER = "default"


def items_copy(items: int, *, seed: int = 7, demo: DemoData | None = None) -> int:
    """``items`` catalogue rows (the demo shop's ids, titles and categories) with one
    ``COPY``; returns the first primary key (they are consecutive)."""
    if demo is None:
        demo = generate_demo_data(users=1, items=items, events=0, seed=seed, days=1, end=_now())
    now = _now().isoformat()
    buffer = io.StringIO()
    for index in range(items):
        categories = copy_text(json.dumps(demo.item_categories[index]))
        title = copy_text(demo.item_titles[index])
        buffer.write(f"{demo_item_id(index)}\t{title}\tt\t{categories}\t{now}\t{now}\n")
    buffer.seek(0)
    with connection.cursor() as cursor:
        cursor.copy_expert(
            "COPY recommender_item (external_id, title, active, categories, created_at, "
            "updated_at) FROM STDIN",
            buffer,
        )
        cursor.execute("SELECT min(id) FROM recommender_item")
        return int(cursor.fetchone()[0])


def demo_shop_copy(*, users: int, items: int, events: int, seed: int = 42, days: int = 42) -> dict:
    """The demo shop of ``generate_demo_data`` (the same arrays: items, profiles, events
    with the same ids, types and timestamps) written with ``COPY`` instead of the ingest
    services: 10M events in minutes instead of ~6.5. Events are loaded into a staging
    table in PostgreSQL's binary format straight from the numpy columns, then inserted in
    time order (so keys grow with time, as with live ingest; ``ingested_at`` is the
    event's time) with the table's secondary indexes and constraints dropped and rebuilt
    afterwards, as a bulk load does; then vacuumed and analysed."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    demo = generate_demo_data(
        users=users, items=items, events=events, seed=seed, days=days, end=_now()
    )
    timings["generate"] = time.perf_counter() - started
    started = time.perf_counter()
    first_pk = items_copy(items, demo=demo)
    now = _now().isoformat()
    profiles = io.StringIO()
    for index, features in enumerate(demo.user_features):
        profiles.write(f"{demo_user_id(index)}\t{copy_text(json.dumps(features))}\t{now}\t{now}\n")
    profiles.seek(0)
    with connection.cursor() as cursor:
        cursor.copy_expert(
            "COPY recommender_userprofile (external_id, features, created_at, updated_at) "
            "FROM STDIN",
            profiles,
        )
        cursor.execute(
            "CREATE UNLOGGED TABLE bench_events (n int8, u int4, i int4, t int2, ts int8)"
        )
        cursor.copy_expert(
            "COPY bench_events FROM STDIN (FORMAT binary)",
            io.BytesIO(
                _binary_rows(demo.event_user, demo.event_item, demo.event_type, demo.event_time)
            ),
        )
        timings["copy"] = time.perf_counter() - started
        started = time.perf_counter()
        dropped = _drop_secondary(cursor, "recommender_event")
        types = "ARRAY[" + ", ".join(f"'{t}'" for t in EVENT_TYPES) + "]"
        cursor.execute(
            "INSERT INTO recommender_event (client, event_id, user_external_id, item_id, "
            "event_type, weight, timestamp, recommendation_id, position, ingested_at) "
            f"SELECT 'operator', 'demo:{int(seed)}:' || n, 'demo-user-' || (u + 1), "
            f"{int(first_pk)} + i, ({types})[t + 1], NULL, to_timestamp(ts), '', NULL, "
            "to_timestamp(ts) FROM bench_events ORDER BY n"
        )
        timings["insert"] = time.perf_counter() - started
        started = time.perf_counter()
        cursor.execute("DROP TABLE bench_events")
        cursor.execute(  # what ingest counts per day
            "INSERT INTO recommender_eventingestday (day, events) "
            "SELECT (ingested_at AT TIME ZONE 'UTC')::date, count(*) FROM recommender_event "
            "GROUP BY 1 ON CONFLICT (day) DO UPDATE "
            "SET events = recommender_eventingestday.events + excluded.events"
        )
        for statement in dropped:
            cursor.execute(statement)
        timings["indexes"] = time.perf_counter() - started
        started = time.perf_counter()
        cursor.execute("VACUUM ANALYZE recommender_event")
        cursor.execute("VACUUM ANALYZE recommender_item")
        cursor.execute("VACUUM ANALYZE recommender_userprofile")
        timings["vacuum"] = time.perf_counter() - started
    return {name: round(seconds, 1) for name, seconds in timings.items()}


def _binary_rows(users, items, types, times) -> bytes:
    """``(n, u, i, t, ts)`` rows in ``COPY ... (FORMAT binary)``: numbered from 0 in the
    given order, the rest from the columns."""
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("n_len", ">i4"), ("n", ">i8"),
            ("u_len", ">i4"), ("u", ">i4"),
            ("i_len", ">i4"), ("i", ">i4"),
            ("t_len", ">i4"), ("t", ">i2"),
            ("ts_len", ">i4"), ("ts", ">i8"),
        ]
    )  # fmt: skip
    rows = np.empty(len(users), dtype=row)
    rows["fields"] = 5
    for name, size in (("n", 8), ("u", 4), ("i", 4), ("t", 2), ("ts", 8)):
        rows[f"{name}_len"] = size
    rows["n"] = np.arange(len(users))
    rows["u"], rows["i"], rows["t"], rows["ts"] = users, items, types, times
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    return header + rows.tobytes() + b"\xff\xff"


def _drop_secondary(cursor, table: str) -> list[str]:
    """Drop ``table``'s constraints and indexes other than its primary key; the
    statements that re-create them."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype <> 'p'",
        [table],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
        [table, table],
    )
    indexes = cursor.fetchall()
    for name, _ in constraints:
        cursor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    return [definition for _, definition in indexes] + [
        f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'
        for name, definition in constraints
    ]


def events_insert(*, users: int, items: int, first_item_pk: int, events: int, days: int) -> None:
    """``events`` view events of random demo users on random items over the last ``days``
    days, generated by PostgreSQL (``generate_series``), then vacuumed and analysed (as
    autovacuum leaves a table: index-only scans need the visibility map)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO recommender_event (client, event_id, user_external_id, item_id, "
            "event_type, weight, timestamp, recommendation_id, position, ingested_at) "
            "SELECT 'operator', 'bench:' || g, 'demo-user-' || (1 + floor(random() * %s))::int, "
            "%s + floor(random() * %s)::int, 'view', NULL, "
            "now() - random() * make_interval(days => %s), '', NULL, now() "
            "FROM generate_series(1, %s) g",
            [users, first_item_pk, items, days, events],
        )
        cursor.execute("VACUUM ANALYZE recommender_event")


def factor_version(
    *, users: int, items: int, components: int, seen_per_user: int, seed: int
) -> ModelVersion:
    """A LightFM version of random factors over the demo users and the first ``items``
    demo items (category features for the catalogue's categories), registered as a
    candidate."""
    rng = np.random.default_rng(seed)
    scale = np.float32(0.1)
    seen = rng.integers(items, size=users * seen_per_user, dtype=np.int32)
    arrays = {
        "user_embeddings": rng.standard_normal((users, components), np.float32) * scale,
        "user_biases": rng.standard_normal(users, np.float32) * scale,
        "item_embeddings": rng.standard_normal((items, components), np.float32) * scale,
        "item_biases": rng.standard_normal(items, np.float32) * scale,
        "item_feature_embeddings": rng.standard_normal((len(CATEGORIES), components), np.float32)
        * scale,
        "item_feature_biases": np.zeros(len(CATEGORIES), np.float32),
        "popularity": np.bincount(seen, minlength=items).astype(np.float32),
        "seen_indptr": np.arange(0, users * seen_per_user + 1, seen_per_user, dtype=np.int64),
        "seen_indices": seen,
    }
    id_maps = {
        "users": IdArray.from_strings(demo_user_id(n) for n in range(users)),
        "items": IdArray.from_strings(demo_item_id(n) for n in range(items)),
    }
    recommender = Recommender.objects.get(name=RECOMMENDER)
    params = {"no_components": components, "epochs": 0, "bench": "random factors"}
    info = write_artifact(
        artifact_staging_dir(RECOMMENDER),
        artifact_name_new(f"bench-{seed}"),
        arrays,
        id_maps,
        ArtifactMeta(
            family="lightfm",
            hyperparameters=params,
            feature_names={"items": category_feature_names(CATEGORIES)},
        ),
    )
    return model_version_create(
        recommender=recommender,
        artifact_uri=artifact_publish(info),
        artifact_sha256=info.sha256,
        artifact_size=info.size_bytes,
        metrics={},
        hyperparameters=params,
        data_window={"end": _now().isoformat()},
        data_stats={"users": users, "items": items},
    )


def serving_shop(
    *, users: int, items: int, events: int, components: int, seen_per_user: int
) -> dict:
    """The large serving case: catalogue, events, versions 1 (active) and 2."""
    started = time.perf_counter()
    first_pk = items_copy(items)
    events_insert(users=users, items=items, first_item_pk=first_pk, events=events, days=40)
    generated = time.perf_counter() - started
    versions = [
        factor_version(
            users=users, items=items, components=components, seen_per_user=seen_per_user, seed=s
        )
        for s in (1, 2)
    ]
    model_version_promote(version=versions[0], reason="bench", actor_label="bench")
    return {
        "generate_seconds": round(generated, 1),
        "versions_seconds": round(time.perf_counter() - started - generated, 1),
        "artifact_bytes": versions[0].artifact_size,
    }


def promote(*, number: int) -> dict:
    """Make version ``number`` active (a promote); the commit's wall-clock time."""
    version = ModelVersion.objects.get(recommender__name=RECOMMENDER, number=number)
    model_version_promote(version=version, reason="bench", actor_label="bench")
    return {"committed_at": time.time()}


def time_load() -> dict:
    """What a serving swap costs in one process, in seconds: the catalogue's read, the
    model's load (verify, index, self-test) and the state's build; and its parts."""
    names = dict(Recommender.objects.values_list("pk", "name"))
    active = active_versions(names)[RECOMMENDER]
    started = time.perf_counter()
    catalog = Catalog.read(catalog_stamp())
    catalog_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model = LoadedModel.load(active)
    state = model_state_build(model, catalog)
    load_seconds = time.perf_counter() - started
    path = local_artifact_path(active.artifact_uri)
    started = time.perf_counter()
    load_artifact(path, verify=True)
    verified = time.perf_counter() - started
    started = time.perf_counter()
    artifact = load_artifact(path, verify=False)
    unverified = time.perf_counter() - started
    started = time.perf_counter()
    IdIndex(artifact.id_maps["users"])
    IdIndex(artifact.id_maps["items"])
    index_seconds = time.perf_counter() - started
    return {
        "catalog_seconds": catalog_seconds,
        "load_seconds": load_seconds,
        "verify_seconds": verified - unverified,
        "index_seconds": index_seconds,
        "universe": len(state.universe),
    }


def _now() -> datetime:
    return datetime.now(UTC)
