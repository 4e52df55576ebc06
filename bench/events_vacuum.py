"""A vacuum of the events table while a benchmark measures, and how much of the measured
time one was in progress.

PostgreSQL's autovacuum only starts when its thresholds are crossed and its launcher
wakes (``autovacuum_naptime``); on a shared bench server it may be off altogether
(``autovacuum`` is a server-wide setting). So the benchmarks do not wait for it:
``EventsVacuum`` runs on its own connection what an autovacuum worker runs on an
insert-only table, over and over, with the worker's cost-based delay and limit (read
from the server): ``VACUUM (DISABLE_PAGE_SKIPPING)``, every heap page read as an
anti-wraparound vacuum does, the heaviest of them. ``lower_autovacuum_thresholds``
makes the real autovacuum take the table at every wake-up too when the server runs it.
``VacuumSampler`` polls ``pg_stat_progress_vacuum`` to report the share of a measured
interval during which any vacuum (these or autovacuum's) of the table was running.

Imported as ``events_vacuum`` (the scripts run as ``python bench/<name>.py``)."""

from __future__ import annotations

import threading
import time

import psycopg2
from common import pg_connect

TABLE = "recommender_event"


def autovacuum_setting(server_url: str, database: str) -> str:
    with pg_connect(server_url, database) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        return str(cursor.fetchone()[0])


def lower_autovacuum_thresholds(server_url: str, database: str) -> None:
    """Storage parameters on the events table: autovacuum (when the server runs it)
    vacuums and analyses it after every 10,000 inserted or changed rows, whatever its
    size, instead of after a fifth of it (2M rows at 10M)."""
    with pg_connect(server_url, database) as connection, connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {TABLE} SET (autovacuum_enabled = true,"
            " autovacuum_vacuum_threshold = 10000, autovacuum_vacuum_scale_factor = 0,"
            " autovacuum_vacuum_insert_threshold = 10000,"
            " autovacuum_vacuum_insert_scale_factor = 0,"
            " autovacuum_analyze_threshold = 10000, autovacuum_analyze_scale_factor = 0)"
        )


class EventsVacuum:
    """``VACUUM (DISABLE_PAGE_SKIPPING)`` of the events table back to back, throttled
    like an autovacuum worker, from ``start()`` until ``stop()``; ``passes`` counts the
    vacuums that completed."""

    def __init__(self, server_url: str, database: str) -> None:
        self.server_url, self.database = server_url, database
        self.passes = 0
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._pid: int | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10)

    def stop(self) -> None:
        self._stopping.set()
        if self._pid is not None:
            with pg_connect(self.server_url, self.database) as connection:
                connection.cursor().execute("SELECT pg_cancel_backend(%s)", [self._pid])
        self._thread.join(30)

    def _run(self) -> None:
        with pg_connect(self.server_url, self.database) as connection:
            cursor = connection.cursor()
            cursor.execute(
                "SELECT current_setting('autovacuum_vacuum_cost_delay'),"
                " nullif(current_setting('autovacuum_vacuum_cost_limit'), '-1'), pg_backend_pid()"
            )
            delay, limit, self._pid = cursor.fetchone()
            cursor.execute("SELECT set_config('vacuum_cost_delay', %s, false)", [delay])
            if limit is not None:
                cursor.execute("SELECT set_config('vacuum_cost_limit', %s, false)", [limit])
            self._started.set()
            while not self._stopping.is_set():
                try:
                    cursor.execute(f"VACUUM (DISABLE_PAGE_SKIPPING) {TABLE}")
                except psycopg2.errors.QueryCanceled:
                    break
                self.passes += 1


class VacuumSampler:
    """Polls ``pg_stat_progress_vacuum`` every ``interval`` seconds while ``sampling``;
    ``share``: the fraction of the polls that found a vacuum of the events table."""

    def __init__(self, server_url: str, database: str, interval: float = 0.05) -> None:
        self.server_url, self.database, self.interval = server_url, database, interval
        self.polls = self.hits = 0

    def sampling(self) -> _Sampling:
        return _Sampling(self)

    @property
    def share(self) -> float:
        return self.hits / self.polls if self.polls else float("nan")


class _Sampling:
    def __init__(self, sampler: VacuumSampler) -> None:
        self.sampler = sampler
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> VacuumSampler:
        self._thread.start()
        return self.sampler

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._thread.join(10)

    def _run(self) -> None:
        sampler = self.sampler
        with pg_connect(sampler.server_url, sampler.database) as connection:
            cursor = connection.cursor()
            while not self._stopping.is_set():
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_progress_vacuum"
                    " WHERE datname = current_database() AND relid = %s::regclass",
                    [TABLE],
                )
                sampler.polls += 1
                sampler.hits += bool(cursor.fetchone()[0])
                time.sleep(sampler.interval)
