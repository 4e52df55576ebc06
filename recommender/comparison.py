"""Side-by-side comparison of model versions (metrics, hyper-parameters, data window) and
the metric deltas a promotion or rollback would bring. Plain Python over the versions'
JSON fields, no Django: the admin pages render what this returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Metric rows in this order first (by the part before "@k"), then any others by name.
METRIC_ORDER = ("precision", "recall", "ndcg", "map", "auc", "coverage", "users")


def metric_name(key_metric: str, metrics: Mapping[str, Any]) -> str | None:
    """The name under which ``metrics`` stores a recommender's ``key_metric``:
    ``precision_at_k`` is stored as ``precision@10`` (k = the run's ``eval_k``)."""
    if key_metric in metrics:
        return key_metric
    base = key_metric.removesuffix("_at_k")
    return next((name for name in metrics if name.split("@")[0] == base), None)


def metric_value(key_metric: str, metrics: Mapping[str, Any]) -> float | None:
    name = metric_name(key_metric, metrics)
    value = metrics.get(name) if name else None
    return float(value) if isinstance(value, int | float) else None


def _metric_sort_key(name: str) -> tuple[int, str]:
    base = name.split("@")[0]
    return (METRIC_ORDER.index(base) if base in METRIC_ORDER else len(METRIC_ORDER), name)


@dataclass(frozen=True)
class Cell:
    value: Any
    # value - the baseline's value, for numbers when there is a baseline.
    delta: float | None = None
    # The relative change in percent, when the baseline is not 0.
    relative: float | None = None

    @property
    def text(self) -> str:
        if self.value is None:
            return "—"
        if isinstance(self.value, float):
            if self.value.is_integer():
                return f"{int(self.value):,}"
            return f"{self.value:.4f}" if 1e-3 <= abs(self.value) < 1e3 else f"{self.value:.4g}"
        return str(self.value)

    @property
    def delta_text(self) -> str:
        """``▲ +0.012 (+4.1%)``: the arrow and sign say the direction without colour."""
        if not self.delta:
            return ""
        arrow = "▲ +" if self.delta > 0 else "▼ −"
        relative = f" ({self.relative:+.1f}%)" if self.relative is not None else ""
        return f"{arrow}{abs(self.delta):.4g}{relative}"


@dataclass(frozen=True)
class Row:
    name: str
    cells: tuple[Cell, ...]
    # True when not every column has the same value (highlighted in the table).
    differs: bool


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _cell(value: Any, baseline: Any, with_delta: bool) -> Cell:
    v, b = _number(value), _number(baseline)
    if not with_delta or v is None or b is None:
        return Cell(value)
    return Cell(value, v - b, (v - b) / abs(b) * 100 if b else None)


def compare_rows(
    columns: Sequence[Mapping[str, Any]],
    *,
    baseline: Mapping[str, Any] | None = None,
    metrics: bool = False,
) -> list[Row]:
    """One row per key found in any column; ``baseline`` (the active version's values)
    adds the delta of each number against it. ``metrics`` orders rows like a metric
    table; otherwise by name."""
    names = list(dict.fromkeys(name for column in columns for name in column))
    names.sort(key=_metric_sort_key if metrics else str)
    rows = []
    for name in names:
        values = [column.get(name) for column in columns]
        base = baseline.get(name) if baseline is not None else None
        rows.append(
            Row(
                name=name,
                cells=tuple(_cell(value, base, baseline is not None) for value in values),
                differs=len({repr(value) for value in values}) > 1,
            )
        )
    return rows
