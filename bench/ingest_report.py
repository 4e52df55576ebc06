"""The report of bench/ingest.py: its sections of docs/BENCHMARKS.md.

Imported as ``ingest_report`` (the scripts run as ``python bench/<name>.py``)."""

from __future__ import annotations

import argparse
import statistics

from common import EVENTS_PER_ITEM, EVENTS_PER_USER, measured_header

TARGET_EVENTS_PER_SECOND = 20_000


def section_markers(args: argparse.Namespace) -> tuple[str, str]:
    """The "Ingest" section; with ``--prefill``, "Ingest with N events stored", one per
    set of ``--db-setting``."""
    key = " --prefill" if args.prefill else ""
    key += "".join(f" {setting}" for setting in sorted(args.db_setting))
    return f"<!-- bench/ingest.py{key}: start -->", f"<!-- bench/ingest.py{key}: end -->"


def summary(rates: list[float]) -> tuple[float, float, float]:
    return statistics.median(rates), min(rates), max(rates)


def render(args, info, api, imported, command: str) -> str:
    medians = {variant: summary(rates)[0] for variant, rates in api["rates"].items()}
    verdict = ", ".join(
        f"{name} {'met' if median >= TARGET_EVENTS_PER_SECOND else 'MISSED'}"
        for name, median in medians.items()
    )
    start, end = section_markers(args)
    stored = f" with {args.prefill:,} events stored" if args.prefill else ""
    vacuum_column = " Vacuum of the events table in progress |" if args.vacuum else ""
    lines = [
        start,
        f"## Ingest{stored}" + "".join(f", {setting}" for setting in args.db_setting),
        "",
        *measured_header(command, info),
        "",
        f"| Path | Events | Runs | Median events/s | Min | Max |{vacuum_column}",
        "|---|---:|---:|---:|---:|---:|" + ("---:|" if args.vacuum else ""),
    ]
    for variant, rates in api["rates"].items():
        median, low, high = summary(rates)
        share = api["vacuum_share"][variant]
        lines.append(
            f"| `POST /api/v1/events` (batches of {args.batch_size:,}; gunicorn {args.workers}"
            f" sync workers; {args.clients} client processes; {variant}) |"
            f" {api['events_per_run']:,} a run | {len(rates)}"
            f" | {median:,.0f} | {low:,.0f} | {high:,.0f} |"
            + (f" {statistics.mean(share):.0%} of the time |" if args.vacuum else "")
        )
    if isinstance(imported, dict):
        i_median, i_low, i_high = summary(imported["rates"])
        lines.append(
            f"| `manage.py import_dataset {args.dataset} --format movielens` (wall time of"
            f" the command, Django start-up included) | {imported['events']:,}"
            f" | {len(imported['rates'])} | {i_median:,.0f} | {i_low:,.0f} | {i_high:,.0f} |"
        )
    elif not args.prefill:
        lines.append(f"| `manage.py import_dataset` | {imported} | | | | |")
    names = list(medians)
    ratio = (
        f"; {names[1]} / {names[0]}, runs alternating: {medians[names[1]] / medians[names[0]]:.2f}"
        if len(names) > 1
        else ""
    )
    lines += ["", *prefill_notes(args, info, api)] if args.prefill else [""]
    lines += [
        f"Target: {TARGET_EVENTS_PER_SECOND:,} events/s through the API{stored}, median of"
        f" the runs: {verdict}{ratio}. Client, server"
        f" and PostgreSQL share the same {info['Cores']} cores, so the client's own work is"
        " part of the cost.",
        end,
    ]
    return "\n".join(lines) + "\n"


def prefill_notes(args: argparse.Namespace, info: dict[str, str], api: dict) -> list[str]:
    notes = [
        f"The database is a copy of the demo shop at {args.prefill:,} events"
        f" ({args.prefill // EVENTS_PER_USER:,} users, {args.prefill // EVENTS_PER_ITEM:,}"
        " items, written with `COPY` by `common.demo_shop_template`); the posted events"
        " name random users and items of the shop."
    ]
    if args.db_setting:
        notes.append(
            "The bench database's sessions run with "
            + ", ".join(f"`{setting}`" for setting in args.db_setting)
            + " (`ALTER DATABASE ... SET`); the server's other settings are its defaults."
        )
    if args.vacuum:
        notes.append(
            f"Server setting `autovacuum = {info['autovacuum']}`; the events table's"
            " autovacuum thresholds are lowered to 10,000 rows. In the vacuum runs"
            " bench/events_vacuum.py vacuums the events table back to back"
            " (`VACUUM (DISABLE_PAGE_SKIPPING)`: every heap page, as an anti-wraparound"
            " autovacuum; throttled with the server's autovacuum cost delay and limit;"
            f" {api['vacuum_passes']} passes completed during the runs). The last column is"
            " the share of 50 ms polls of `pg_stat_progress_vacuum` during the runs that"
            " found a vacuum of the events table."
        )
    return [line for note in notes for line in (note, "")]
