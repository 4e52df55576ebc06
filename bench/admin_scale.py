"""Admin and API pages at 10M events: how long each list page, the dashboard, the control
room and the version compare page take to answer.

    .venv/bin/python bench/admin_scale.py --prepare-only        # ~5 min, no lock needed
    flock /work/wt/bench.lock .venv/bin/python bench/admin_scale.py --measure-only
    .venv/bin/python bench/admin_scale.py --drop

Preparation: a fresh PostgreSQL database ``recsite_bench_admin_scale`` with the demo
shop at EVENTS events (EVENTS / 100 users, EVENTS / 200 items: the shape of
bench/scale.py) written with ``COPY`` (bench/scale_data.py: the same arrays as
``generate_demo_data``, keys growing with time and ``ingested_at`` the event's time, so
the last 14 days hold a third of the events), then VERSIONS model versions with a
training run and a promotion each, and DataErasure rows.

Measurement (in a Django subprocess, production settings, PostgreSQL): a superuser's
client (``django.test.Client``: the full middleware stack, no network) gets every page
once to warm up, then REPEATS times; the median and the slowest are reported against
the 500 ms target (issue 17). The API's list endpoints are measured alike with an API
key of every scope.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import statistics
import sys
import time
from datetime import UTC, datetime

from common import (
    BENCHMARKS_MD,
    EVENTS_PER_ITEM,
    EVENTS_PER_USER,
    ROOT,
    command_env,
    django_call,
    drop_database,
    machine_info,
    manage_ok,
    postgres_version,
    recreate_database,
    write_section,
)

SECTION_START = "<!-- bench/admin_scale.py: start -->"
SECTION_END = "<!-- bench/admin_scale.py: end -->"
TARGET_MS = 500.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="recsite_bench_admin_scale")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--versions", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--measure-only", action="store_true", help="the database is kept")
    parser.add_argument("--drop", action="store_true", help="drop the database and exit")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--django", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser.parse_args()


def env_of(args: argparse.Namespace) -> dict[str, str]:
    data_dir = ROOT / "var" / "bench" / "admin-scale"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = command_env(f"{args.server_url.rstrip('/')}/{args.database}", data_dir)
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    return env


# --- the Django side ---------------------------------------------------------------------


def django_main(arguments: list[str]) -> None:
    import django

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
    django.setup()
    command, *rest = arguments
    result = prepare_rows(*map(int, rest)) if command == "prepare" else time_pages(int(rest[0]))
    print(json.dumps(result), flush=True)


def prepare_rows(events: int, versions: int) -> dict:
    """The shop (``COPY``), then ``versions`` versions with their runs and promotions."""
    import scale_data

    from recommender.models import DataErasure, ErasureKind, Recommender
    from tests.factories import ModelVersionFactory, PromotionEventFactory, TrainingRunFactory
    from training.models import RunStatus

    timings = scale_data.demo_shop_copy(
        users=events // EVENTS_PER_USER, items=events // EVENTS_PER_ITEM, events=events
    )
    recommender = Recommender.objects.get(name=scale_data.RECOMMENDER)
    for number in range(versions):
        version = ModelVersionFactory(
            recommender=recommender,
            metrics={"candidate": {"precision_at_10": 0.1 + number / 1000}},
        )
        PromotionEventFactory(recommender=recommender, to_version=version)
        TrainingRunFactory(recommender=recommender, version=version, status=RunStatus.SUCCEEDED)
    DataErasure.objects.bulk_create(
        DataErasure(kind=ErasureKind.EXPIRED, events_deleted=n) for n in range(100)
    )
    return timings


def _pages() -> list[tuple[str, str]]:
    """(label, path) of every page measured."""
    from django.contrib import admin
    from django.urls import reverse

    from recommender.models import Event, ModelVersion

    pages = [("admin index (control room)", reverse("admin:index"))]
    pages.append(("dashboard", reverse("admin:dashboard")))
    for model in sorted(admin.site._registry, key=lambda m: m._meta.label):
        meta = model._meta
        pages.append(
            (f"{meta.label} list", reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        )
    events = reverse("admin:recommender_event_changelist")
    items = reverse("admin:recommender_item_changelist")
    profiles = reverse("admin:recommender_userprofile_changelist")
    last = Event.objects.order_by("-pk").values_list("pk", "user_external_id", "event_id")[0]
    pages += [
        ("Event list, page 50", f"{events}?p=49"),
        ("Event list, by user", f"{events}?q={last[1]}"),
        ("Event list, by event id", f"{events}?q={last[2]}"),
        ("Event list, oldest first", f"{events}?o=0"),
        ("Event list, ?o=-5 (client: not sortable)", f"{events}?o=-5"),
        ("Event change page", reverse("admin:recommender_event_change", args=[last[0]])),
        ("Item list, id prefix", f"{items}?q=demo-item-12"),
        ("UserProfile list, page 5", f"{profiles}?p=4"),
    ]
    ids = list(ModelVersion.objects.order_by("-pk").values_list("pk", flat=True)[:4])
    compare = reverse("admin:recommender_modelversion_compare")
    pages.append(("version compare (2)", f"{compare}?ids={ids[0]},{ids[1]}"))
    pages.append(("version compare (4)", f"{compare}?ids={','.join(map(str, ids))}"))
    return pages


def _api_pages() -> list[tuple[str, str]]:
    return [
        ("API model-versions", "/api/v1/model-versions"),
        ("API training-runs", "/api/v1/training-runs"),
        ("API online-metrics", "/api/v1/online-metrics"),
    ]


def time_pages(repeats: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from recommender.models import Scope
    from recommender.services.api_keys import api_key_create

    user = get_user_model().objects.filter(username="bench").first()
    if user is None:
        user = get_user_model().objects.create_superuser("bench", "bench@example.com", None)
    client = Client(HTTP_HOST="127.0.0.1", secure=True)
    client.force_login(user)
    _, key = api_key_create(name=f"bench-{secrets.token_hex(4)}", scopes=list(Scope.values))
    api = Client(HTTP_HOST="127.0.0.1", secure=True, HTTP_AUTHORIZATION=f"Api-Key {key}")
    results = {}
    for who, pages in ((client, _pages()), (api, _api_pages())):
        for label, path in pages:
            first = who.get(path)
            if first.status_code != 200:
                raise SystemExit(f"{path}: {first.status_code}")
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                who.get(path)
                times.append(1000 * (time.perf_counter() - started))
            results[label] = {"path": path, "median": statistics.median(times), "max": max(times)}
    return results


# --- the report ----------------------------------------------------------------------------


def render(args, info, shape: dict, results: dict, command: str, when: datetime) -> str:
    lines = [
        SECTION_START,
        "",
        f"### Admin and API at {args.events:,} events ({when:%Y-%m-%d %H:%M} UTC)",
        "",
        f"`{command}` on {info['CPU']}, {info['Cores']} cores (shared, noisy), {info['RAM']}, "
        f"PostgreSQL {info['postgres']}; load average at start "
        f"{info['Load average at start (1/5/15 min)']}. The demo shop at "
        f"{args.events:,} events ({args.events // EVENTS_PER_USER:,} users, "
        f"{args.events // EVENTS_PER_ITEM:,} items; written with COPY: {shape}), "
        f"{args.versions} versions with their runs and promotions. A superuser's "
        "`django.test.Client` (every middleware, no network), production settings; each "
        f"page once to warm up, then {args.repeats} times:",
        "",
        "| Page | median ms | slowest ms | target |",
        "|---|---:|---:|---|",
    ]
    for label, row in results.items():
        verdict = "met" if row["max"] <= TARGET_MS else "MISSED"
        lines.append(f"| {label} | {row['median']:.0f} | {row['max']:.0f} | {verdict} |")
    missed = [label for label, row in results.items() if row["max"] > TARGET_MS]
    lines += [
        "",
        f"- Every page <= {TARGET_MS:g} ms: "
        + ("met." if not missed else f"MISSED by {', '.join(missed)}."),
        "",
        SECTION_END,
    ]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    if args.django:
        django_main(args.django)
        return
    if args.drop:
        drop_database(args.server_url, args.database)
        return
    env = env_of(args)
    shape_file = ROOT / "var" / "bench" / "admin-scale" / f"{args.database}.json"
    if not args.measure_only:
        recreate_database(args.server_url, args.database)
        manage_ok(env, "migrate", "-v", "0")
        print(f"writing {args.events:,} events ...", flush=True)
        shape = django_call(__file__, env, "prepare", str(args.events), str(args.versions))
        shape_file.write_text(json.dumps(shape))
        print(f"  {shape}", flush=True)
    if args.prepare_only:
        return
    shape = json.loads(shape_file.read_text()) if shape_file.exists() else {}
    info = {**machine_info(), "postgres": postgres_version(args.server_url)}
    when = datetime.now(UTC)
    results = django_call(__file__, env, "pages", str(args.repeats))
    command = " ".join(["python bench/admin_scale.py", *map(shlex.quote, sys.argv[1:])])
    section = render(args, info, shape, results, command, when)
    print(section)
    if not args.no_write:
        write_section(SECTION_START, SECTION_END, section)
        print(f"updated {BENCHMARKS_MD}")


if __name__ == "__main__":
    main()
