"""No pickle anywhere outside the tests, so no loaded file can run code: a static check of
every module (with the parser, not a text search, so prose about pickles does not count),
and ruff's S301 rule kept on. The artifact loader's refusal of object-dtype and pickled
``.npy`` files at run time is tested in ``tests/recommender/test_faults_artifacts.py``."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".venv", "tests", "var", "node_modules", ".git"}
# Modules whose loading runs code from the data.
PICKLING_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve"}
# Calls that unpickle whatever the receiver: ``torch.load``, ``pandas.read_pickle``, ...
PICKLING_CALLS = {("torch", "load"), ("yaml", "unsafe_load"), ("marshal", "loads")}
PICKLING_FUNCTIONS = {"read_pickle", "from_pickle"}


def source_files() -> list[Path]:
    return sorted(
        path
        for path in ROOT.rglob("*.py")
        if not SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts)
    )


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def pickle_uses(source: str) -> Iterator[str]:
    """Each use of pickling in ``source``, as ``line: what``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names.append(getattr(node, "module", None) or "")
            for name in names:
                if name.split(".")[0] in PICKLING_MODULES:
                    yield f"{node.lineno}: imports {name}"
        if not isinstance(node, ast.Call):
            continue
        func = _dotted(node.func)
        owner, _, attr = func.rpartition(".")
        allow_pickle = _keyword(node, "allow_pickle")
        if allow_pickle is not None and not (
            isinstance(allow_pickle, ast.Constant) and allow_pickle.value is False
        ):
            yield f"{node.lineno}: {func}(allow_pickle=<not False>)"
        if attr == "load" and owner in ("np", "numpy") and allow_pickle is None:
            yield f"{node.lineno}: {func}() without allow_pickle=False"
        if (owner.rpartition(".")[2], attr) in PICKLING_CALLS or attr in PICKLING_FUNCTIONS:
            yield f"{node.lineno}: {func}()"
        if attr == "load" and owner == "yaml" and _keyword(node, "Loader") is None:
            yield f"{node.lineno}: yaml.load() without a safe Loader"


def test_the_scan_covers_the_code():
    files = {path.relative_to(ROOT).as_posix() for path in source_files()}
    assert {
        "recommender/artifacts.py",
        "recommender/serving/model.py",
        "training/runner.py",
    } <= files
    assert not any(name.startswith("tests/") for name in files)


def test_no_module_outside_the_tests_unpickles_anything():
    found = {
        path.relative_to(ROOT).as_posix(): uses
        for path in source_files()
        if (uses := list(pickle_uses(path.read_text(encoding="utf-8"))))
    }
    assert found == {}


@pytest.mark.parametrize(
    "code",
    [
        "import pickle",
        "from pickle import loads",
        "import joblib",
        "from cloudpickle import load",
        "import numpy as np\nnp.load('a.npy')",
        "import numpy\nnumpy.load('a.npy', mmap_mode='r')",
        "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
        "import numpy as np\nflag = False\nnp.load('a.npy', allow_pickle=flag)",
        "import numpy as np\nnp.save('a.npy', [object()], allow_pickle=True)",
        "import torch\ntorch.load('model.pt')",
        "import pandas as pd\npd.read_pickle('frame.pkl')",
        "import yaml\nyaml.load(text)",
        "import marshal\nmarshal.loads(data)",
    ],
)
def test_the_scan_finds_each_way_to_unpickle(code):
    assert list(pickle_uses(code))


@pytest.mark.parametrize(
    "code",
    [
        "import numpy as np\nnp.load('a.npy', allow_pickle=False, mmap_mode='r')",
        "import json\njson.load(f)",
        '"""Arrays are never pickles; a pickled file is refused."""',
        "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
    ],
)
def test_the_scan_leaves_safe_code_alone(code):
    assert list(pickle_uses(code)) == []


def test_ruff_checks_s301_everywhere_but_the_tests():
    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    selected = ruff.get("select", []) + ruff.get("extend-select", [])
    assert any("S301".startswith(rule) for rule in selected if rule.startswith("S"))
    assert not any("S301".startswith(rule) for rule in ruff.get("ignore", []) if rule)
    ignored_in = [
        pattern
        for pattern, rules in ruff.get("per-file-ignores", {}).items()
        if any("S301".startswith(rule) for rule in rules)
    ]
    assert ignored_in in ([], ["tests/**"])
