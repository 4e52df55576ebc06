"""Offline quality of every model family on public datasets, with their default
hyper-parameters: P@10, recall@10, NDCG@10, coverage@10 and fit time.

    .venv/bin/python bench/quality.py                 # both datasets, updates docs/BENCHMARKS.md
    .venv/bin/python bench/quality.py --only ml-100k --no-write

The numbers come from the code a run uses: the per-user split of
``training.pipeline.split`` (each user's latest 20 % held out, the recommender's
default), the fits of ``training.families`` with the defaults of
``recommender.families``, and the evaluation of ``training.pipeline.metrics`` (top 10
over all items, the user's train items removed), scored through
``recommender.family_scoring`` as a run scores them. Datasets (``../shared/data``):

- MovieLens 100K: every rating is an event weighted by the rating (what a recsite
  ``rating`` event weighs), split by time;
- hetrec2011 Last.fm: user x artist play counts, weight 1 per pair (play counts reach
  hundreds of thousands, above any event weight recsite accepts). They carry **no
  timestamps**: each user's held-out 20 % is a seeded random draw, not their latest.

Variants besides the defaults: EASE with the user's history weighted by recency
(``recency_half_life`` 0.3: an event 30 % of the way back in the user's history counts
half). On Last.fm the "recency" is the random order, so that variant means nothing there
and is skipped. Then ``auto``: the search of ``training.search`` for ``--budget`` seconds
(120) on the validation split carved from the train part (never the holdout), its winner
fitted on the train part and scored on the holdout like the rows above.

Each dataset's table is its own marked part of the section, so ``--only`` rewrites that
one and leaves the other as it was.

No database and no Django settings: the pure modules only."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from common import BENCHMARKS_MD, ROOT, machine_info, write_section

sys.path.insert(0, str(ROOT))

from recommender.families import FAMILIES  # noqa: E402
from recommender.metric_names import metric_key  # noqa: E402
from training.families.base import FitContext  # noqa: E402
from training.families.fit import family_scorer, fit_family  # noqa: E402
from training.pipeline.matrices import Interactions, last_seen_matrix  # noqa: E402
from training.pipeline.metrics import evaluate  # noqa: E402
from training.pipeline.split import Split, split_matrices, split_per_user  # noqa: E402
from training.search.outcome import outcome_text, search_outcome  # noqa: E402
from training.search.study import SearchConfig, run_search  # noqa: E402
from training.search.validation import search_data  # noqa: E402

SECTION_START = "<!-- bench/quality.py: start -->"
SECTION_END = "<!-- bench/quality.py: end -->"
DATA = ROOT.parent / "shared" / "data"
HOLDOUT = 0.2
K = 10
SEED = 42
# (label, family, overrides): every family with its defaults, then the variants.
VARIANTS: list[tuple[str, str, dict]] = [
    ("popularity", "popularity", {}),
    ("lightfm", "lightfm", {}),
    ("als", "als", {}),
    ("svd", "svd", {}),
    ("itemknn", "itemknn", {}),
    ("itemknn bm25", "itemknn", {"similarity": "bm25"}),
    ("ease", "ease", {}),
    ("ease, recency-weighted history (half-life 0.3)", "ease", {"recency_half_life": 0.3}),
]


@dataclass(frozen=True)
class Dataset:
    name: str
    interactions: Interactions
    n_users: int
    n_items: int
    timed: bool  # real timestamps (else a seeded random order)
    note: str


@dataclass(frozen=True)
class Row:
    label: str
    metrics: dict[str, float]
    fit_seconds: float


def movielens_100k() -> Dataset:
    raw = np.loadtxt(DATA / "ml-100k" / "u.data", dtype=np.int64)
    users, user_index = np.unique(raw[:, 0], return_inverse=True)
    items, item_index = np.unique(raw[:, 1], return_inverse=True)
    return Dataset(
        "ml-100k",
        Interactions(user_index, item_index, raw[:, 2].astype(np.float32), raw[:, 3]),
        len(users),
        len(items),
        timed=True,
        note="100,000 ratings (weight = rating), 943 users x 1,682 movies; each user's "
        "latest 20 % held out (time split)",
    )


def lastfm() -> Dataset:
    raw = np.loadtxt(DATA / "hetrec2011-lastfm-2k" / "user_artists.dat", dtype=np.int64, skiprows=1)
    users, user_index = np.unique(raw[:, 0], return_inverse=True)
    items, item_index = np.unique(raw[:, 1], return_inverse=True)
    order = np.random.default_rng(SEED).permutation(len(raw))  # no timestamps
    return Dataset(
        "hetrec2011-lastfm-2k",
        Interactions(user_index, item_index, np.ones(len(raw), np.float32), order),
        len(users),
        len(items),
        timed=False,
        note=f"{len(raw):,} user-artist pairs (weight 1), {len(users):,} users x "
        f"{len(items):,} artists; **no timestamps: each user's held-out 20 % is a seeded "
        f"random draw (seed {SEED})**, not their latest",
    )


def bench(dataset: Dataset, threads: int, budget: float) -> tuple[list[Row], dict[str, int]]:
    split = split_per_user(dataset.interactions, HOLDOUT)
    train, test = split_matrices(dataset.interactions, split, dataset.n_users, dataset.n_items)
    last_seen = last_seen_matrix(
        dataset.interactions.subset(split.train), dataset.n_users, dataset.n_items
    )
    rows = []
    for label, family, overrides in VARIANTS:
        if not dataset.timed and overrides.get("recency_half_life"):
            continue
        params = {
            "family": family,
            **FAMILIES[family].defaults(),
            **overrides,
            "num_threads": threads,
            "random_seed": SEED,
        }
        context = FitContext(num_threads=threads, random_seed=SEED, last_seen=last_seen)
        started = time.perf_counter()
        fitted = fit_family(train, params, context)
        seconds = time.perf_counter() - started
        scorer = family_scorer(fitted, params, history=train, last_seen=last_seen)
        metrics = evaluate(scorer, train, test, k=K)
        rows.append(Row(label, metrics, seconds))
        print(f"  {label:<50} {_cells(metrics, seconds)}", flush=True)
    if budget:
        rows.append(auto(dataset, split, train, test, last_seen, threads, budget))
    return rows, {
        "train": int(train.nnz),
        "test": int(test.nnz),
        "users": int(test.getnnz(1).astype(bool).sum()),
    }


def auto(
    dataset: Dataset,
    split: Split,
    train,
    test,
    last_seen,
    threads: int,
    budget: float,
) -> Row:
    """The search on the validation split of the train part, then its winner fitted on
    the train part and scored on the holdout (``fit`` = search + that fit)."""
    data, _ = search_data(
        dataset.interactions,
        split,
        fraction=HOLDOUT,
        n_users=dataset.n_users,
        n_items=dataset.n_items,
    )
    config = SearchConfig(
        budget_seconds=budget,
        metric=metric_key("precision_at_k", K),
        k=K,
        seed=SEED,
        num_threads=threads,
    )
    started = time.perf_counter()
    result = run_search(data, config, clock=time.monotonic)
    best = result.best
    params = {"family": best.family, **best.params, "num_threads": threads, "random_seed": SEED}
    context = FitContext(num_threads=threads, random_seed=SEED, last_seen=last_seen)
    fitted = fit_family(train, params, context)
    seconds = time.perf_counter() - started
    scorer = family_scorer(fitted, params, history=train, last_seen=last_seen)
    metrics = evaluate(scorer, train, test, k=K)
    states = [t.state for t in result.trials]
    values = ", ".join(
        f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in best.params.items()
    )
    search = {"metric": config.metric, **search_outcome(result)}
    label = (
        f"**auto, {budget:g} s search**: {len(states)} trials ({states.count('complete')} "
        f"complete, {states.count('pruned')} pruned) in {result.seconds:.1f} s"
        + (f", {', '.join(result.excluded)} left out" if result.excluded else "")
        + f"; {outcome_text(search)}; winner {best.family} {values}"
    )
    print(f"  {label}\n  {'':<50} {_cells(metrics, seconds)}", flush=True)
    return Row(label, metrics, seconds)


def _cells(metrics: dict[str, float], seconds: float) -> str:
    return (
        f"P@10 {metrics['precision@10']:.3f}  R@10 {metrics['recall@10']:.3f}  "
        f"NDCG@10 {metrics['ndcg@10']:.3f}  cov {metrics['coverage@10']:.3f}  fit {seconds:.2f} s"
    )


def dataset_markers(dataset: str) -> tuple[str, str]:
    return (
        f"<!-- bench/quality.py {dataset}: start -->",
        f"<!-- bench/quality.py {dataset}: end -->",
    )


def render_header() -> str:
    return "\n".join(
        [
            SECTION_START,
            "## Model quality per family (`bench/quality.py`)",
            "",
            "Offline, through the code a run uses (per-user split of "
            "`training.pipeline.split`, the fits of `training.families` with the defaults "
            "of `recommender.families`, `training.pipeline.metrics` on the top 10 over all "
            "items, train items removed); `auto` is `training.search` on a validation split "
            "carved from the train part, its winner fitted on the train part and scored on "
            "the holdout like the others (its fit time is the search plus that fit). Fit "
            "times on a shared, noisy machine (see the load average); one run each. EASE's "
            "fit is the dense inverse of an items x items matrix: cubic in the items "
            "(Last.fm's 17,632 artists).",
            SECTION_END,
        ]
    )


def render_dataset(dataset: Dataset, rows: list[Row], counts: dict[str, int], command: str) -> str:
    start, end = dataset_markers(dataset.name)
    info = machine_info()
    popularity = next(r for r in rows if r.label == "popularity").metrics["ndcg@10"]
    lines = [
        start,
        f"### {dataset.name}",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `{command}`. Machine: "
        + "; ".join(f"{k} {v}" for k, v in info.items())
        + ".",
        "",
        f"{dataset.note}; {counts['train']:,} train / {counts['test']:,} test pairs, "
        f"{counts['users']:,} users evaluated.",
        "",
        "| family (defaults unless said) | P@10 | recall@10 | NDCG@10 | NDCG vs popularity "
        "| coverage@10 | fit |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        m = row.metrics
        lines.append(
            f"| {row.label} | {m['precision@10']:.3f} | {m['recall@10']:.3f} | "
            f"{m['ndcg@10']:.3f} | {m['ndcg@10'] / popularity:.2f}x | "
            f"{m['coverage@10']:.3f} | {row.fit_seconds:.2f} s |"
        )
    by_label = {row.label: row.metrics["precision@10"] for row in rows}
    searched = [row for row in rows if row.label.startswith("**auto")]
    if searched and "lightfm" in by_label:
        ratio = searched[0].metrics["precision@10"] / by_label["lightfm"]
        lines += ["", f"auto's P@10 is {ratio:.2f}x LightFM's (defaults)."]
    lines.append(end)
    return "\n".join(lines) + "\n"


def write(texts: list[tuple[str, str]]) -> None:
    """The section's header, then each dataset's part: replaced where it is, else put at
    the end of the section."""
    text = BENCHMARKS_MD.read_text()
    if SECTION_START not in text:
        write_section(SECTION_START, SECTION_END, render_header())
    for name, part in texts:
        start, end = dataset_markers(name)
        text = BENCHMARKS_MD.read_text()
        if start in text and end in text:
            write_section(start, end, part)
        else:
            head, tail = text.split(SECTION_END, 1)
            BENCHMARKS_MD.write_text(head.rstrip("\n") + "\n\n" + part + SECTION_END + tail)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["ml-100k", "lastfm"], help="one dataset")
    parser.add_argument("--threads", type=int, default=2, help="num_threads of every fit")
    parser.add_argument(
        "--budget", type=float, default=120.0, help="seconds of the auto search (0: no auto)"
    )
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    loaders = {"ml-100k": movielens_100k, "lastfm": lastfm}
    results = []
    for key, load in loaders.items():
        if args.only and args.only != key:
            continue
        dataset = load()
        print(f"{dataset.name}: {dataset.note}", flush=True)
        rows, counts = bench(dataset, args.threads, args.budget)
        results.append((dataset, rows, counts))
    if not args.no_write:
        command = "python bench/quality.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
        write([(d.name, render_dataset(d, rows, counts, command)) for d, rows, counts in results])
        print(f"wrote the quality section of {Path('docs/BENCHMARKS.md')}")


if __name__ == "__main__":
    main()
