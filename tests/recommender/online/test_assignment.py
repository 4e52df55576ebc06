"""Arm assignment: a pure function of (salt, user id): sticky, shares respected."""

from collections import Counter

import pytest

from recommender.online.assignment import arm_for, bucket

ARMS = [("control", 0.5), ("treatment-1", 0.3), ("treatment-2", 0.2)]


def test_a_user_gets_the_same_arm_every_time():
    assert {arm_for("salt", "user-42", ARMS) for _ in range(100)} == {
        arm_for("salt", "user-42", ARMS)
    }


def test_the_arm_depends_only_on_salt_and_user_not_on_process_or_order():
    # sha256, not Python's hash (keyed per process): a fixed expected value
    assert bucket("s", "u") == pytest.approx(int("f30a8c69aa63889b", 16) / 2**64)


def test_shares_are_respected_over_many_users():
    counts = Counter(arm_for("salt", f"user-{n}", ARMS) for n in range(20_000))
    for name, share in ARMS:
        assert counts[name] / 20_000 == pytest.approx(share, abs=0.015)


def test_another_salt_reshuffles_the_users():
    same = sum(
        arm_for("a", f"u{n}", ARMS[:2]) == arm_for("b", f"u{n}", ARMS[:2]) for n in range(4000)
    )
    # independent assignments agree with probability 0.5^2 + 0.3^2 / 0.8^2-ish, never ~1
    assert same / 4000 < 0.7


def test_growing_a_later_arm_moves_only_users_of_the_arm_it_takes_from():
    before = {n: arm_for("s", f"u{n}", [("control", 0.9), ("t", 0.1)]) for n in range(5000)}
    after = {n: arm_for("s", f"u{n}", [("control", 0.8), ("t", 0.2)]) for n in range(5000)}
    assert all(after[n] == "t" for n in before if before[n] == "t")


def test_no_arms_is_an_error():
    with pytest.raises(ValueError):
        arm_for("s", "u", [])
