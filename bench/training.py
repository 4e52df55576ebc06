"""Training benchmark: ``manage.py retrain`` next to a bare LightFM script, same data.

    .venv/bin/python bench/training.py                  # defaults, updates docs/BENCHMARKS.md
    .venv/bin/python bench/training.py --repeat 1 --only ml100k --no-write

What it does, for each dataset (MovieLens 100K from ../shared/data, and the synthetic shop
of ``manage.py generate_demo_data`` at ~10x its size, 1,000,000 events):

1. creates a fresh PostgreSQL database ``recsite_bench_train_<dataset>`` and a temporary
   ``RECSITE_DATA_DIR`` (artifacts), migrates, and loads the data with
   ``manage.py import_dataset`` / ``manage.py generate_demo_data`` (timed, reported);
2. REPEAT times, alternating which goes first:
   - recsite: ``manage.py retrain`` as a subprocess, wall-timed; its phase timings and
     metrics are read back from the run's ``training_trainingrun`` row;
   - bare: this file run as ``--bare-worker`` in a subprocess (so it pays the same
     interpreter start-up and imports): SQL straight into numpy, the same pure
     ``training.pipeline`` functions build the same matrices and the same split, then
     ``LightFM(...).fit(...)`` once with the recommender's hyper-parameters and
     ``lightfm.evaluation.precision_at_k``;
3. drops the database and the directory, prints a table and writes the "Training"
   section of docs/BENCHMARKS.md.

What is compared (medians over the repeats; min-max in brackets):

- fit: recsite's ``fit`` phase vs the bare ``LightFM.fit``;
- fit+evaluate: recsite's ``fit`` + ``evaluate`` phases vs bare fit + ``precision_at_k``.
  recsite's evaluate scores the candidate *and* the popularity baseline on six metrics
  (precision, recall, ndcg, map, coverage, AUC); the bare script only candidate precision;
- comparable command: recsite's wall time minus its ``refit`` and ``artifact`` phases
  (what the bare script does not do) vs the bare subprocess's wall time, both from
  process start: imports, Django set-up and checks, load, build, split, fit, evaluate;
- total: the whole ``manage.py retrain`` (with the refit on all data, the artifact, the
  version row and the promotion) vs the bare subprocess.

Target: comparable command and fit+evaluate at most 1.3x the bare script; precision@10
within noise (LightFM with 2 threads is Hogwild, so two fits differ a little anyway).
Never part of CI: ~10 minutes on 2 cores, most of it the 1M-event dataset.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common import (
    BENCHMARKS_MD,
    ROOT,
    command_env,
    machine_info,
    manage_ok,
    postgres_version,
    timed_run,
    write_section,
)

SECTION_START = "<!-- bench/training.py: start -->"
SECTION_END = "<!-- bench/training.py: end -->"
TARGET_RATIO = 1.3
DB_PREFIX = "recsite_bench_train_"


# --- arguments and environment ----------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per dataset")
    parser.add_argument("--dataset", default="../shared/data/ml-100k", help="relative to repo")
    parser.add_argument("--demo-users", type=int, default=10_000)
    parser.add_argument("--demo-items", type=int, default=5_000)
    parser.add_argument("--demo-events", type=int, default=1_000_000)
    parser.add_argument("--demo-days", type=int, default=90)
    parser.add_argument(
        "--only", choices=("ml100k", "demo"), help="run one dataset instead of both"
    )
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the databases")
    # Internal: the bare LightFM script, run by the benchmark in its own process.
    parser.add_argument("--bare-worker", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def pg_connect(url: str) -> Any:
    import psycopg2

    parts = urlsplit(url)
    connection = psycopg2.connect(
        dbname=parts.path.lstrip("/") or "postgres",
        user=parts.username or None,
        password=parts.password or None,
        host=parts.hostname or None,
        port=parts.port or None,
    )
    connection.autocommit = True
    return connection


@contextmanager
def fresh_database(server_url: str, name: str, keep: bool) -> Iterator[str]:
    """``server_url/name``, dropped and created afresh; dropped again on exit."""
    admin = pg_connect(f"{server_url.rstrip('/')}/postgres")
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield f"{server_url.rstrip('/')}/{name}"
    finally:
        if not keep:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# --- the bare LightFM script --------------------------------------------------------------


def bare_lightfm(database_url: str) -> dict[str, Any]:
    """What a data scientist would write without recsite, on the same database: one SQL
    query per table into numpy, the same matrices and split (the pure
    ``training.pipeline`` functions), one ``LightFM.fit``, ``precision_at_k``.

    Reads the ``default`` recommender's hyper-parameters and data settings from the
    database so both sides train the same model. Returns timings (s) and precision@k."""
    sys.path.insert(0, str(ROOT))
    timings: dict[str, float] = {}
    started = time.perf_counter()
    import numpy as np
    import scipy.sparse as sp
    from lightfm import LightFM
    from lightfm.evaluation import precision_at_k

    from recommender.families import FAMILIES
    from training.pipeline.matrices import IdMap, Interactions, feature_matrix
    from training.pipeline.split import split_global, split_matrices, split_per_user

    timings["imports"] = time.perf_counter() - started

    started = time.perf_counter()
    connection = pg_connect(database_url)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT algorithm, hyperparameters, "
            "num_threads, random_seed, event_weights, duplicate_aggregation, window_days, "
            "use_item_features, use_user_features, holdout_strategy, holdout_fraction, "
            "eval_k, refit_on_full_data FROM recommender_recommender WHERE name = 'default'"
        )
        names = [column.name for column in cursor.description]
        config = dict(zip(names, cursor.fetchone(), strict=True))
        # The lightfm family's values: its schema defaults, then the recommender's.
        config |= FAMILIES["lightfm"].defaults() | config["hyperparameters"].get("lightfm", {})
        if config["window_days"] is not None or config["use_user_features"]:
            raise SystemExit("the bare script only handles window_days=None, no user features")
        weights = sorted(
            (str(name), float(value)) for name, value in config["event_weights"].items()
        )
        cursor.execute(
            "SELECT e.user_external_id, e.item_id, w.weight * COALESCE(e.weight, 1.0), "
            "EXTRACT(EPOCH FROM e.timestamp)::bigint "
            "FROM recommender_event e JOIN (VALUES "
            + ", ".join(["(%s, %s::float8)"] * len(weights))
            + ") AS w(type, weight) ON w.type = e.event_type "
            "WHERE e.timestamp <= now() ORDER BY e.timestamp, e.id",
            [value for pair in weights for value in pair],
        )
        rows = cursor.fetchall()
        user_col, item_col, weight_col, stamp_col = zip(*rows, strict=True) if rows else ([],) * 4
        user_ids = np.array(user_col, dtype=np.str_)
        item_pks_all = np.array(item_col, dtype=np.int64)
        event_weights = np.array(weight_col, dtype=np.float32)
        stamps = np.array(stamp_col, dtype=np.int64)
        del rows, user_col, item_col, weight_col, stamp_col
        item_pks, item_index = np.unique(item_pks_all, return_inverse=True)
        cursor.execute(
            "SELECT id, external_id, categories FROM recommender_item WHERE id = ANY(%s)",
            [item_pks.tolist()],
        )
        catalog = {pk: (external_id, categories or []) for pk, external_id, categories in cursor}
    connection.close()
    timings["load"] = time.perf_counter() - started

    started = time.perf_counter()
    users, user_index = IdMap.from_values(user_ids)
    items = IdMap(np.array([catalog[pk][0] for pk in item_pks.tolist()], dtype=np.str_))
    interactions = Interactions(
        users=user_index,
        items=item_index.astype(np.int64),
        weights=event_weights,
        timestamps=stamps,
    )
    item_features = None
    if config["use_item_features"]:
        categories = [catalog[pk][1] for pk in item_pks.tolist()]
        rows_of = np.repeat(np.arange(len(items), dtype=np.int64), [len(c) for c in categories])
        labels = np.array([f"category:{c}" for names in categories for c in names], dtype=np.str_)
        item_features = feature_matrix(items, rows_of, labels).matrix
    if config["holdout_strategy"] == "global_cutoff":
        cutoff = float(np.quantile(stamps, 1.0 - config["holdout_fraction"]))
        split = split_global(interactions, cutoff)
    else:
        split = split_per_user(interactions, config["holdout_fraction"])
    train, test = split_matrices(
        interactions, split, len(users), len(items), duplicates=config["duplicate_aggregation"]
    )
    coo = train.tocoo()
    positives = sp.coo_matrix(
        (np.ones_like(coo.data), (coo.row, coo.col)), shape=coo.shape, dtype=np.float32
    )
    timings["build"] = time.perf_counter() - started

    threads = int(config["num_threads"])
    started = time.perf_counter()
    model = LightFM(
        no_components=int(config["no_components"]),
        loss=config["loss"],
        learning_rate=float(config["learning_rate"]),
        item_alpha=float(config["item_alpha"]),
        user_alpha=float(config["user_alpha"]),
        random_state=int(config["random_seed"]),
    )
    model.fit(
        positives,
        sample_weight=None if config["loss"] == "warp-kos" else coo,
        item_features=item_features,
        epochs=int(config["epochs"]),
        num_threads=threads,
    )
    timings["fit"] = time.perf_counter() - started

    started = time.perf_counter()
    k = int(config["eval_k"])
    precision = precision_at_k(
        model,
        test,
        train_interactions=train,
        k=k,
        item_features=item_features,
        num_threads=threads,
    )
    timings["evaluate"] = time.perf_counter() - started
    return {
        "timings": timings,
        "precision": float(precision.mean()),
        "k": k,
        "events": int(len(interactions)),
        "train": int(split.stats.n_train),
        "test_users": int(split.stats.test_users),
        "hyperparameters": {
            name: config[name]
            for name in ("no_components", "loss", "learning_rate", "epochs", "item_alpha")
            + ("user_alpha", "num_threads", "random_seed")
        },
    }


# --- one measured repeat --------------------------------------------------------------------


@dataclass
class RecsiteRun:
    wall: float
    cpu: float
    phases: dict[str, float]
    precision: float
    popularity: float
    decision: str


@dataclass
class BareRun:
    wall: float
    cpu: float
    timings: dict[str, float]
    precision: float


def run_recsite(env: dict[str, str], database_url: str) -> RecsiteRun:
    # LightFM, as the bare script (the default recommender's own algorithm may be auto).
    timed = timed_run(
        [sys.executable, str(ROOT / "manage.py"), "retrain", "--algorithm", "lightfm"], env
    )
    done = timed.done
    if done.returncode not in (0, 3):
        sys.exit(f"manage.py retrain failed ({done.returncode}):\n{done.stderr[-3000:]}")
    connection = pg_connect(database_url)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, decision, phase_timings, metrics, error "
            "FROM training_trainingrun ORDER BY id DESC LIMIT 1"
        )
        status, decision, phases, metrics, error = cursor.fetchone()
    connection.close()
    if status != "succeeded":
        sys.exit(f"the run did not succeed ({status}): {error}")
    k = metrics["k"]
    return RecsiteRun(
        wall=timed.wall,
        cpu=timed.cpu,
        phases={name: float(value) for name, value in phases.items()},
        precision=metrics["candidate"][f"precision@{k}"],
        popularity=metrics["popularity"][f"precision@{k}"],
        decision=decision,
    )


def run_bare(env: dict[str, str], database_url: str) -> tuple[BareRun, dict[str, Any]]:
    command = [sys.executable, str(Path(__file__).resolve()), "--bare-worker", database_url]
    timed = timed_run(command, env)
    done = timed.done
    if done.returncode != 0:
        sys.exit(f"the bare LightFM script failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    bare = BareRun(
        wall=timed.wall, cpu=timed.cpu, timings=result["timings"], precision=result["precision"]
    )
    return bare, result


# --- datasets -----------------------------------------------------------------------------


@dataclass
class DatasetResult:
    key: str
    label: str
    load_command: str
    load_seconds: float
    events: int = 0
    test_users: int = 0
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    recsite: list[RecsiteRun] = field(default_factory=list)
    bare: list[BareRun] = field(default_factory=list)


def bench_dataset(
    args: argparse.Namespace, key: str, label: str, load_args: list[str]
) -> DatasetResult:
    name = f"{DB_PREFIX}{key}"
    print(f"\n== {label}: database {name}", flush=True)
    data_dir = Path(tempfile.mkdtemp(prefix=f"recsite-bench-train-{key}-"))
    try:
        with fresh_database(args.server_url, name, args.keep_db) as database_url:
            env = command_env(database_url, data_dir)
            manage_ok(env, "migrate", "--no-input")
            load_seconds = manage_ok(env, *load_args)
            result = DatasetResult(
                key=key,
                label=label,
                load_command="manage.py " + shlex.join(load_args),
                load_seconds=load_seconds,
            )
            print(f"   loaded with `{result.load_command}` in {load_seconds:.1f} s", flush=True)
            for repeat in range(args.repeat):
                order = ("recsite", "bare") if repeat % 2 == 0 else ("bare", "recsite")
                for side in order:
                    if side == "recsite":
                        run = run_recsite(env, database_url)
                        result.recsite.append(run)
                        print(
                            f"   [{repeat + 1}/{args.repeat}] recsite {run.wall:6.1f} s  "
                            f"p@10 {run.precision:.4f} (popularity {run.popularity:.4f}, "
                            f"{run.decision})  phases {run.phases}",
                            flush=True,
                        )
                    else:
                        bare, extra = run_bare(env, database_url)
                        result.bare.append(bare)
                        result.events = extra["events"]
                        result.test_users = extra["test_users"]
                        result.hyperparameters = extra["hyperparameters"]
                        rounded = {name: round(value, 3) for name, value in bare.timings.items()}
                        print(
                            f"   [{repeat + 1}/{args.repeat}] bare    {bare.wall:6.1f} s  "
                            f"p@10 {bare.precision:.4f}  timings {rounded}",
                            flush=True,
                        )
            return result
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


# --- reporting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        return cls(statistics.median(values), min(values), max(values))

    def seconds(self) -> str:
        return f"{self.median:.2f} s ({self.low:.2f}-{self.high:.2f})"

    def ratio(self) -> str:
        return f"{self.median:.2f}x ({self.low:.2f}-{self.high:.2f})"

    def value(self) -> str:
        return f"{self.median:.4f} ({self.low:.4f}-{self.high:.4f})"


def _phase(run: RecsiteRun, *names: str) -> float:
    return sum(run.phases.get(name, 0.0) for name in names)


@dataclass(frozen=True)
class Comparison:
    """One row of the table: recsite's and the bare script's seconds and their ratio."""

    what: str
    recsite: Stat
    bare: Stat
    ratio: Stat
    target: bool


def comparisons(result: DatasetResult) -> list[Comparison]:
    pairs = list(zip(result.recsite, result.bare, strict=True))

    def row(what: str, ours: list[float], theirs: list[float], target: bool) -> Comparison:
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        return Comparison(what, Stat.of(ours), Stat.of(theirs), Stat.of(ratios), target)

    return [
        row(
            "data: load + build + split (bare: SQL into numpy + same pipeline functions)",
            [_phase(r, "load", "build", "split") for r, _ in pairs],
            [b.timings["load"] + b.timings["build"] for _, b in pairs],
            False,
        ),
        row(
            "fit (recsite: `fit` phase; bare: `LightFM.fit`)",
            [_phase(r, "fit") for r, _ in pairs],
            [b.timings["fit"] for _, b in pairs],
            False,
        ),
        row(
            "fit + evaluate (bare evaluate: `precision_at_k` only)",
            [_phase(r, "fit", "evaluate") for r, _ in pairs],
            [b.timings["fit"] + b.timings["evaluate"] for _, b in pairs],
            True,
        ),
        row(
            "comparable command: wall minus `refit` and `artifact` vs bare wall",
            [r.wall - _phase(r, "refit", "artifact") for r, _ in pairs],
            [b.wall for _, b in pairs],
            True,
        ),
        row(
            "total: whole `manage.py retrain` vs bare wall",
            [r.wall for r, _ in pairs],
            [b.wall for _, b in pairs],
            False,
        ),
        row(
            "total CPU time (user + sys, all threads) of the two processes",
            [r.cpu for r, _ in pairs],
            [b.cpu for _, b in pairs],
            False,
        ),
    ]


def lightfm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for distribution in ("lightfm", "rectools-lightfm"):
        try:
            return f"{version(distribution)} ({distribution})"
        except PackageNotFoundError:
            continue
    return "unknown"


def render(results: list[DatasetResult], info: dict[str, str], command: str, when: datetime) -> str:
    lines = [
        SECTION_START,
        "## Training",
        "",
        f"Measured {when:%Y-%m-%d %H:%M} UTC with `{command}`.",
        "",
        "| Machine | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in info.items()),
        "",
        "recsite = `manage.py retrain` as a subprocess (phase timings from its "
        "`TrainingRun` row); bare = a script in `bench/training.py` run as a subprocess "
        "that reads the same database with one SQL query per table, builds the same "
        "matrices and the same per-user time split with the pure `training.pipeline` "
        "functions, calls `LightFM(...).fit(...)` once with the same hyper-parameters "
        "and item features, and `lightfm.evaluation.precision_at_k`. recsite also fits "
        "the popularity baseline, computes six metrics for both, runs the gates, refits "
        "on all data, writes the artifact and registers and promotes the version. "
        "Medians over the repeats, (min-max); a ratio's median is the median of the "
        "per-repeat ratios.",
        "",
    ]
    for result in results:
        params = ", ".join(f"{k}={v}" for k, v in result.hyperparameters.items())
        recsite_p = Stat.of([r.precision for r in result.recsite])
        bare_p = Stat.of([b.precision for b in result.bare])
        popularity = Stat.of([r.popularity for r in result.recsite])
        lines += [
            f"### {result.label}",
            "",
            f"{result.events:,} events, {result.test_users:,} users evaluated; loaded with "
            f"`{result.load_command}` in {result.load_seconds:.0f} s. "
            f"{len(result.recsite)} repeats. Hyper-parameters: {params}.",
            "",
            "| Compared | recsite | bare | ratio recsite/bare |",
            "|---|---:|---:|---:|",
        ]
        for row in comparisons(result):
            mark = ""
            if row.target:
                mark = " ✔" if row.ratio.median <= TARGET_RATIO else " ✘ (target 1.3x)"
            lines.append(
                f"| {row.what} | {row.recsite.seconds()} | {row.bare.seconds()} | "
                f"{row.ratio.ratio()}{mark} |"
            )
        lines += [
            f"| precision@10 | {recsite_p.value()} | {bare_p.value()} | "
            f"popularity {popularity.median:.4f} |",
            "",
            "recsite phases (median s): "
            + ", ".join(
                f"{name} {statistics.median(r.phases.get(name, 0.0) for r in result.recsite):.2f}"
                for name in result.recsite[0].phases
            )
            + "; bare (median s): "
            + ", ".join(
                f"{name} {statistics.median(b.timings[name] for b in result.bare):.2f}"
                for name in result.bare[0].timings
            )
            + ".",
            "",
        ]
    lines.append(
        f"Target: the comparable command and fit + evaluate at most {TARGET_RATIO}x the bare "
        "script, precision@10 within noise (2-thread LightFM is Hogwild: no two fits agree "
        "exactly). Other jobs may share the machine; see the load average."
    )
    lines.append(SECTION_END)
    return "\n".join(lines)


def print_table(results: list[DatasetResult]) -> None:
    for result in results:
        print(f"\n{result.label}: {result.events:,} events, {len(result.recsite)} repeats")
        print(f"  {'compared':<72} {'recsite':>22} {'bare':>22} {'ratio':>20}")
        for row in comparisons(result):
            flag = ""
            if row.target:
                flag = "  ok" if row.ratio.median <= TARGET_RATIO else "  MISSES 1.3x"
            print(
                f"  {row.what[:72]:<72} {row.recsite.seconds():>22} {row.bare.seconds():>22} "
                f"{row.ratio.ratio():>20}{flag}"
            )
        recsite_p = Stat.of([r.precision for r in result.recsite])
        bare_p = Stat.of([b.precision for b in result.bare])
        popularity = statistics.median(r.popularity for r in result.recsite)
        print(
            f"  precision@10: recsite {recsite_p.value()}, bare {bare_p.value()}, "
            f"popularity {popularity:.4f}"
        )


def main() -> None:
    args = parse_args()
    if args.bare_worker:
        print(json.dumps(bare_lightfm(args.bare_worker)))
        return
    when = datetime.now(UTC)
    info = machine_info()
    info["LightFM"] = lightfm_version()
    info["PostgreSQL"] = postgres_version(args.server_url)
    command = "python bench/training.py" + (" " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "")
    print(f"{command}\n" + "\n".join(f"  {name}: {value}" for name, value in info.items()))
    results: list[DatasetResult] = []
    dataset = (ROOT / args.dataset).resolve()
    if args.only in (None, "ml100k"):
        if (dataset / "u.data").is_file():
            results.append(
                bench_dataset(
                    args,
                    "ml100k",
                    "MovieLens 100K",
                    ["import_dataset", args.dataset, "--format", "movielens"],
                )
            )
        else:
            print(f"MovieLens 100K not found at {dataset}: skipped")
    if args.only in (None, "demo"):
        results.append(
            bench_dataset(
                args,
                "demo",
                f"Generated shop, {args.demo_events:,} events",
                [
                    "generate_demo_data",
                    "--users",
                    str(args.demo_users),
                    "--items",
                    str(args.demo_items),
                    "--events",
                    str(args.demo_events),
                    "--days",
                    str(args.demo_days),
                ],
            )
        )
    if not results:
        sys.exit("nothing was measured")
    print_table(results)
    if not args.no_write:
        write_section(SECTION_START, SECTION_END, render(results, info, command, when))
        print(f"\nwrote the Training section of {BENCHMARKS_MD.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
