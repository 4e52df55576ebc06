"""The import rules between the project's packages, read from the source with ``ast``
(every import statement, at module level or inside a function):

- ``recsite`` is the composition root: ``recommender`` and ``training`` never import it;
- ``training`` may import ``recommender``, never the reverse;
- no import is deferred (inside a function, a class or a conditional, or at module level
  after code) except the few listed in ``DEFERRED_ALLOWED``, each for a reason that is
  not a cycle."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("recsite", "recommender", "training")

# (module, where, statement): every deferred import, and why it is not at the top.
DEFERRED_ALLOWED = {
    # AppConfig.ready: models (and what imports them) load only once the registry is ready.
    (
        "recommender.apps",
        "RecommenderConfig.ready",
        "from recommender.auth import api_keys_changed",
    ),
    ("recommender.apps", "RecommenderConfig.ready", "from recommender.models import ApiKey"),
    # Registers the Celery tasks in every process (eager mode applies one by name).
    ("training.apps", "TrainingConfig.ready", "from training import tasks"),
    # After get_wsgi_application(): serving imports models.
    ("recsite.wsgi", "<module>", "from recommender.serving.registry import registry"),
    ("recsite.wsgi", "<module>", "from recommender.online.recording import recording_start"),
    # After get_wsgi_application(): the serving fast path reads the URLconf (views, models).
    (
        "recsite.wsgi",
        "<module>",
        "from recsite.wsgi_serving import ServingFastPath, leading_serving_routes",
    ),
    # After PROMETHEUS_MULTIPROC_DIR is set: prometheus_client reads it when imported.
    ("recsite.gunicorn.conf", "<module>", "from prometheus_client import multiprocess"),
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    imported: tuple[str, ...]  # the modules named (``from a import b``: ``a``)
    statement: str
    where: str  # "<module>" or the enclosing ``Class.function``
    deferred: bool
    line: int


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module of ``from <node.module> import ...`` (relative ones too)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    parts = parts[: len(parts) - node.level + (1 if is_package else 0)]
    return ".".join(parts + ([node.module] if node.module else []))


class _Collector(ast.NodeVisitor):
    """Every import statement, with its scope and whether it runs later than the top of
    its module: inside a function, a class or a block (if, try, with, a loop), or at module
    level after a statement that is not an import."""

    BLOCKS = (ast.If, ast.Try, ast.With, ast.For, ast.While, ast.Match)

    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.is_package = is_package
        self.scope: list[str] = []
        self.nested = 0
        self.after_code = False
        self.found: list[Import] = []

    def visit_Module(self, node: ast.Module) -> None:
        for index, statement in enumerate(node.body):
            self.visit(statement)
            is_docstring = (
                index == 0
                and isinstance(statement, ast.Expr)
                and isinstance(statement.value, ast.Constant)
            )
            if not (is_docstring or isinstance(statement, ast.Import | ast.ImportFrom)):
                self.after_code = True

    def _inside(self, node: ast.AST, name: str | None) -> None:
        self.scope += [name] if name else []
        self.nested += 1
        self.generic_visit(node)
        self.nested -= 1
        self.scope = self.scope[:-1] if name else self.scope

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._inside(node, node.name)

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_ClassDef = visit_FunctionDef

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, self.BLOCKS):
            self._inside(node, None)
        else:
            super().visit(node)

    def _add(self, node: ast.Import | ast.ImportFrom, imported: tuple[str, ...]) -> None:
        self.found.append(
            Import(
                module=self.module,
                imported=imported,
                statement=ast.unparse(node),
                where=".".join(self.scope) or "<module>",
                deferred=self.nested > 0 or self.after_code,
                line=node.lineno,
            )
        )

    def visit_Import(self, node: ast.Import) -> None:
        self._add(node, tuple(alias.name for alias in node.names))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self._add(node, (_resolve(self.module, node, self.is_package),))


def collect_imports(source: str, module: str, *, is_package: bool = False) -> list[Import]:
    collector = _Collector(module, is_package)
    collector.visit(ast.parse(source))
    return collector.found


def _project_imports() -> list[Import]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            is_package = path.name == "__init__.py"
            found += collect_imports(path.read_text(), _module_name(path), is_package=is_package)
    return found


def _top(name: str) -> str:
    return name.split(".")[0]


IMPORTS = _project_imports()


def _importing(importer: tuple[str, ...], imported: str) -> list[str]:
    return [
        f"{i.module}:{i.line} {i.statement}"
        for i in IMPORTS
        if _top(i.module) in importer and any(_top(name) == imported for name in i.imported)
    ]


def test_every_package_is_read():
    modules = {i.module for i in IMPORTS}
    assert {"recommender.serving.registry", "training.services", "recsite.urls"} <= modules


def test_recommender_and_training_never_import_the_composition_root():
    assert _importing(("recommender", "training"), "recsite") == []


def test_recommender_never_imports_training():
    assert _importing(("recommender",), "training") == []


def test_the_only_deferred_imports_are_the_listed_ones():
    """A deferred import is how a cycle hides; the few needed for another reason are
    listed (and one that no longer exists must leave the list)."""
    deferred = {(i.module, i.where, i.statement) for i in IMPORTS if i.deferred}
    assert deferred == DEFERRED_ALLOWED


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os", ("os", "<module>", False)),
        ('"""Doc."""\nfrom __future__ import annotations', ("__future__", "<module>", False)),
        ("def f():\n    from recsite import metrics", ("recsite", "f", True)),
        ("class A:\n    def g(self):\n        import redis", ("redis", "A.g", True)),
        ("if X:\n    import json", ("json", "<module>", True)),
        ("try:\n    import json\nexcept ImportError:\n    pass", ("json", "<module>", True)),
        ("x = 1\nimport json", ("json", "<module>", True)),
    ],
)
def test_the_reader_sees_every_kind_of_import(source, expected):
    (found,) = collect_imports(source, "pkg.mod")
    assert (found.imported[0], found.where, found.deferred) == expected


def test_a_relative_import_is_resolved_to_its_package():
    (found,) = collect_imports("from .models import X", "training.admin")
    assert found.imported == ("training.models",)
    (found,) = collect_imports("from . import tasks", "training", is_package=True)
    assert found.imported == ("training",)


def fresh_process(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "recsite.settings", "DEBUG": "true", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


REGISTERED = (
    "from celery import current_app\n"
    "from training.services import RUN_TRAINING_TASK\n"
    "print(RUN_TRAINING_TASK in current_app.tasks)\n"
)


def test_eager_mode_registers_the_task_it_applies_by_name():
    """``training.services`` applies ``run_training`` by name in eager mode without
    importing the task module; ``TrainingConfig.ready`` must have registered it."""
    assert fresh_process(REGISTERED, CELERY_TASK_ALWAYS_EAGER="true") == "True"


def test_a_worker_registers_the_tasks_through_autodiscovery():
    code = "from recsite.celery import app\napp.loader.import_default_modules()\n" + REGISTERED
    assert fresh_process(code, CELERY_TASK_ALWAYS_EAGER="false") == "True"


def test_a_web_process_loads_no_fitting_library():
    """The URLconf (admin included) and the serving path, as a web worker imports them,
    load none of what only training needs: they doubled a serving worker's memory."""
    code = (
        "import sys, recsite.urls, recsite.wsgi_serving\n"
        "heavy = ('sklearn', 'implicit', 'lightfm', 'optuna', 'training.tasks', "
        "'training.runner', 'training.families')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    assert fresh_process(code, CELERY_TASK_ALWAYS_EAGER="false") == "[]"
