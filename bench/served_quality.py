"""Quality as served: P@10 of what ``GET /api/v1/recommendations/{user}`` answers for
MovieLens 100K, LightFM against ``auto``, in one run.

    .venv/bin/python bench/served_quality.py                 # --budget 120
    .venv/bin/python bench/served_quality.py --budget 30 --database recsite_bench_served

Each user's latest 20 % of ratings is held out (``training.pipeline.split``, as
``bench/quality.py``); only the rest is imported (a temporary copy of the dataset with
those ratings, never committed). ``manage.py retrain --algorithm lightfm`` trains and
promotes the first version; recsite serves it under gunicorn and every user with
held-out ratings asks for 10 items (the API removes what they rated). Then ``manage.py
retrain --time-budget BUDGET`` runs the default recommender's ``auto`` search, which is
promoted if it passes the gates (champion included), and the same requests are asked of
it. P@10 is the share of the 10 served items that the user rated in the held-out part,
averaged over those users. Prints the figures; writes nothing (docs/BENCHMARKS.md quotes
them)."""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import servers
from common import ROOT, command_env, drop_database, manage_ok, recreate_database
from quality import DATA, HOLDOUT, movielens_100k

sys.path.insert(0, str(ROOT))

from training.pipeline.split import split_per_user  # noqa: E402

K = 10


def held_out(dataset_dir: Path, target: Path) -> dict[str, set[str]]:
    """Write ``target``: the dataset with only the train part of ``u.data``; return each
    user's held-out item ids."""
    raw = np.loadtxt(dataset_dir / "u.data", dtype=np.int64)
    split = split_per_user(movielens_100k().interactions, HOLDOUT)
    target.mkdir(parents=True)
    for path in dataset_dir.iterdir():
        if path.name != "u.data" and path.is_file():
            shutil.copy(path, target / path.name)
    np.savetxt(target / "u.data", raw[split.train], fmt="%d", delimiter="\t")
    test: dict[str, set[str]] = {}
    for user, item in raw[split.test][:, :2].tolist():
        test.setdefault(str(user), set()).add(str(item))
    return test


def served_precision(url: str, key: str, test: dict[str, set[str]]) -> tuple[float, int]:
    """Mean P@K over the users with held-out items, and the served version."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    precisions, version = [], 0
    try:
        for user, items in test.items():
            connection.request(
                "GET",
                f"/api/v1/recommendations/{user}?limit={K}",
                headers={"Authorization": f"Api-Key {key}"},
            )
            response = connection.getresponse()
            body = json.loads(response.read())
            if response.status != 200:
                sys.exit(f"GET recommendations/{user} answered {response.status}: {body}")
            served = [item["item_id"] for item in body["items"]]
            precisions.append(len(items.intersection(served)) / K)
            version = body["model_version"]
    finally:
        connection.close()
    return float(np.mean(precisions)), version


def wait_for_version(url: str, key: str, user: str, version: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if served_precision(url, key, {user: set()})[1] == version:
            return
        time.sleep(0.5)
    sys.exit(f"recsite did not serve version {version} within 30 s")


def newest_version(env: dict[str, str]) -> tuple[int, str]:
    """The default recommender's newest version: its number and family."""
    code = (
        "import django; django.setup()\n"
        "from recommender.models import ModelVersion\n"
        "v = ModelVersion.objects.filter(recommender__name='default').latest('number')\n"
        "print(v.number, v.hyperparameters.get('family'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "recsite.settings"},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"reading the active version failed:\n{done.stderr[-2000:]}")
    number, family = done.stdout.split()
    return int(number), family


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=120, help="auto's search, seconds")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="recsite_bench_served")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--port", type=int, default=8794)
    args = parser.parse_args()
    dataset = DATA / "ml-100k"
    if not (dataset / "u.data").is_file():
        sys.exit(f"MovieLens 100K not found at {dataset}")
    with tempfile.TemporaryDirectory(prefix="recsite-served-quality-") as tmp:
        test = held_out(dataset, Path(tmp) / "ml-100k-train")
        env = command_env(f"{args.server}/{args.database}", Path(tmp) / "data")
        env["REDIS_URL"] = args.redis_url
        recreate_database(args.server, args.database)
        server = None
        try:
            manage_ok(env, "migrate", "--no-input", "-v", "0")
            manage_ok(
                env, "import_dataset", str(Path(tmp) / "ml-100k-train"), "--format", "movielens"
            )
            key = subprocess.run(
                [
                    sys.executable,
                    "manage.py",
                    "create_api_key",
                    "served",
                    "--scopes",
                    "recommendations:read",
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            results = []
            seconds = manage_ok(env, "retrain", "--algorithm", "lightfm")
            server = servers.recsite(
                env, port=args.port, workers=2, threads=1, log=Path(tmp) / "gunicorn.log"
            )
            for label, command in (
                ("lightfm", None),
                (
                    f"auto ({args.budget} s)",
                    ("retrain", "--time-budget", str(args.budget), "--no-promote"),
                ),
            ):
                if command is not None:
                    # Its own holdout is older than v1's data (the same events), so the
                    # champion gate would hold it back: promoted by hand, to be served.
                    seconds = manage_ok(env, *command)
                    number, family = newest_version(env)
                    manage_ok(env, "promote", str(number), "--reason", "served quality bench")
                number, family = newest_version(env)
                wait_for_version(server.url, key, next(iter(test)), number)
                precision, _ = served_precision(server.url, key, test)
                results.append((label, number, family, precision, seconds))
                print(
                    f"{label}: served v{number} ({family}), P@{K} {precision:.4f} over "
                    f"{len(test)} users, retrain {seconds:.0f} s",
                    flush=True,
                )
        finally:
            if server is not None:
                server.stop()
            drop_database(args.server, args.database)
    base = results[0][3]
    for label, number, family, precision, _ in results:
        print(f"| {label} | v{number} {family} | {precision:.3f} | {precision / base:.2f}x |")


if __name__ == "__main__":
    main()
