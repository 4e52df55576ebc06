"""The lock files agree with the pins they were made from (scripts/lock)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\[\]-]+)==([^\s\\;]+)", re.MULTILINE)


def pins(path: Path) -> dict[str, str]:
    return {
        re.sub(r"\[.*\]", "", name).lower().replace("_", "-"): version
        for name, version in PIN.findall(path.read_text())
    }


@pytest.mark.parametrize(
    ("requirements", "lock"),
    [
        (["requirements.txt"], "requirements.lock"),
        (["requirements.txt", "requirements-dev.txt"], "requirements-dev.lock"),
    ],
)
def test_every_pin_is_locked_at_its_version(requirements, lock):
    locked = pins(ROOT / lock)
    wanted = {}
    for name in requirements:
        wanted |= pins(ROOT / name)
    mismatched = {
        name: (version, locked.get(name))
        for name, version in wanted.items()
        if locked.get(name) != version
    }
    assert not mismatched, f"run ./scripts/lock: {lock} disagrees with the pins {mismatched}"


def test_the_lock_files_carry_hashes_and_the_dev_lock_agrees_with_the_runtime_lock():
    runtime, dev = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements-dev.lock")
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / lock).read_text()
        assert text.count("--hash=sha256:") >= len(pins(ROOT / lock))
    assert {name: dev.get(name) for name in runtime} == runtime
