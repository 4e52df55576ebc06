"""Training reads from a real PostgreSQL streaming replica (``RECSITE_TRAINING_DATABASE_URL``).

A private primary cluster (never the shared one) holds a migrated ``recsite`` database
with the generated shop; ``pg_basebackup -R`` makes a standby of it on another port.
``manage.py retrain`` runs with ``DATABASE_URL`` on the primary (runs, versions) and
``RECSITE_TRAINING_DATABASE_URL`` on the standby (events, items, profiles):
- with the standby's replay paused, events stored on the primary since are not in the
  run, and the run records the window it saw (``data_source: replica``, its end no later
  than the standby's last replayed commit); once replay resumes, the next run has them;
- with the standby stopped, the run fails with ``training_database_unavailable`` and
  nothing else changes (no version, the active version untouched)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2
import pytest

from tests.private_servers import PrivatePostgres, private_postgres
from tests.processes import ROOT, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CATCH_UP_SECONDS = 30.0


@dataclass
class Replicated:
    primary: PrivatePostgres
    standby: PrivatePostgres
    env: dict[str, str]

    def manage(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "manage.py", *argv],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if check and done.returncode != 0:
            pytest.fail(
                f"manage.py {' '.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}"
            )
        return done

    def query(self, cluster: PrivatePostgres, sql: str) -> list[tuple[Any, ...]]:
        connection = psycopg2.connect(cluster.url("recsite"))
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def caught_up(self) -> None:
        """Wait until the standby has replayed everything the primary has written."""
        (target,) = self.query(self.primary, "SELECT pg_current_wal_lsn()")[0]
        lag = f"SELECT pg_wal_lsn_diff('{target}', pg_last_wal_replay_lsn())"
        wait_until(
            lambda: self.query(self.standby, lag)[0][0] <= 0,
            CATCH_UP_SECONDS,
            f"the standby to replay up to {target}",
        )

    def events(self, cluster: PrivatePostgres) -> int:
        return self.query(cluster, "SELECT count(*) FROM recommender_event")[0][0]

    def last_run(self) -> tuple[str, str, dict[str, Any]]:
        return self.query(
            self.primary,
            "SELECT status, error, data_stats FROM training_trainingrun ORDER BY id DESC LIMIT 1",
        )[0]


@pytest.fixture
def replicated(server_env) -> Iterator[Replicated]:
    with private_postgres() as primary:
        primary.create_database("recsite")
        env = {**server_env, "DATABASE_URL": primary.url("recsite")}
        setup = Replicated(primary, primary, env)
        setup.manage("migrate", "-v", "0")
        setup.manage(
            "generate_demo_data", "--users", "80", "--items", "40", "--events", "3000",
            "--seed", "1",
        )  # fmt: skip
        with private_postgres(standby_of=primary) as standby:
            setup.standby = standby
            setup.env = {**env, "RECSITE_TRAINING_DATABASE_URL": standby.url("recsite")}
            setup.caught_up()
            yield setup


def test_training_reads_what_the_replica_has_replayed_and_records_it(replicated):
    replicated.query(replicated.standby, "SELECT pg_wal_replay_pause()")
    seen_by_standby = replicated.events(replicated.standby)
    (replayed_until,) = replicated.query(
        replicated.standby,
        "SELECT coalesce(pg_last_xact_replay_timestamp(), max(ingested_at)) FROM recommender_event",
    )[0]
    replicated.manage(
        "generate_demo_data", "--users", "80", "--items", "40", "--events", "3000", "--seed", "2"
    )
    assert replicated.events(replicated.primary) > seen_by_standby

    first = replicated.manage("retrain", "--algorithm", "popularity", "--no-promote")
    assert "from the replica database" in first.stdout + first.stderr
    status, error, stats = replicated.last_run()
    assert (status, error) == ("succeeded", "")
    assert stats["data_source"] == "replica"
    assert stats["events"] <= seen_by_standby  # nothing stored on the primary since the pause
    assert datetime.fromisoformat(stats["window_end"]) <= replayed_until

    replicated.query(replicated.standby, "SELECT pg_wal_replay_resume()")
    replicated.caught_up()
    replicated.manage("retrain", "--algorithm", "popularity", "--no-promote")
    status, _, stats = replicated.last_run()
    assert status == "succeeded"
    assert stats["events"] > seen_by_standby  # the new events are in the next run


def test_a_stopped_replica_fails_the_run_with_a_clear_code_and_touches_nothing(replicated):
    assert replicated.manage("retrain", "--algorithm", "popularity").returncode == 0
    before = replicated.query(
        replicated.primary,
        "SELECT count(*), max(number) FILTER (WHERE status = 'active') "
        "FROM recommender_modelversion",
    )[0]

    replicated.standby.stop()
    failed = replicated.manage("retrain", "--algorithm", "popularity", check=False)

    assert failed.returncode == 1, failed.stdout + failed.stderr
    status, error, _ = replicated.last_run()
    assert status == "failed"
    assert "training_database_unavailable" in error
    assert "training_database_unavailable" in failed.stdout + failed.stderr
    after = replicated.query(
        replicated.primary,
        "SELECT count(*), max(number) FILTER (WHERE status = 'active') "
        "FROM recommender_modelversion",
    )[0]
    assert after == before
