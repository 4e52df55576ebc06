"""When the no-model popularity fallback is rebuilt after events changed: never more
often than every FALLBACK_REBUILD_SECONDS, and never more than 1 / FALLBACK_REBUILD_COST
of the time (a build that scans 10M events is not repeated every 30 s)."""

from recommender.serving.registry import (
    FALLBACK_REBUILD_COST,
    FALLBACK_REBUILD_SECONDS,
    fallback_rebuild_due,
)


def test_a_cheap_build_is_redone_after_the_minimum_age():
    assert not fallback_rebuild_due(age=FALLBACK_REBUILD_SECONDS - 1, build_seconds=0.05)
    assert fallback_rebuild_due(age=FALLBACK_REBUILD_SECONDS, build_seconds=0.05)


def test_a_costly_build_waits_in_proportion_to_its_cost():
    build = 12.0  # the aggregate at 10M events
    assert not fallback_rebuild_due(age=FALLBACK_REBUILD_SECONDS * 2, build_seconds=build)
    assert not fallback_rebuild_due(age=FALLBACK_REBUILD_COST * build - 1, build_seconds=build)
    assert fallback_rebuild_due(age=FALLBACK_REBUILD_COST * build, build_seconds=build)


def test_never_built_is_due():
    # the registry's defaults for a recommender it has not built yet: built at 0, in 0 s
    assert fallback_rebuild_due(age=1e9, build_seconds=0.0)
