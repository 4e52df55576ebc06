"""Plain-text summaries of a run, for the terminal (``retrain``) and logs."""

from __future__ import annotations

from recommender.families import FAMILIES, RUN_SETTINGS, SEARCH_SETTINGS, Algorithm
from training.models import TrainingRun
from training.search.outcome import outcome_text

_SHOWN = ("precision", "recall", "ndcg", "map", "coverage", "auc")


def _shown_metrics(metrics: dict) -> list[str]:
    names = list(metrics.get("candidate", {}))
    return [name for prefix in _SHOWN for name in names if name.split("@")[0] == prefix]


def metric_columns(run: TrainingRun) -> list[tuple[str, dict]]:
    """The metric table's columns, (title, metrics): candidate and popularity on the whole
    holdout, and when the champion was evaluated, the candidate and the champion on the
    champion's holdout (what the champion gate compares), side by side."""
    metrics = run.metrics or {}
    if not metrics.get("candidate"):
        return []
    columns = [("candidate", metrics["candidate"]), ("popularity", metrics["popularity"])]
    if metrics.get("champion"):
        columns.append(("candidate*", metrics["candidate_on_champion_holdout"]))
        columns.append((f"champion* v{metrics.get('champion_version')}", metrics["champion"]))
    return columns


def metric_table(run: TrainingRun) -> tuple[list[str], list[tuple[str, list[float | None]]]]:
    """``(column titles, [(metric, [value per column])])`` for the admin's run page."""
    columns = metric_columns(run)
    rows = [
        (name, [values.get(name) for _, values in columns])
        for name in _shown_metrics(run.metrics or {})
    ]
    return [title for title, _ in columns], rows


def render_metric_table(run: TrainingRun) -> str:
    """Candidate vs popularity vs champion, one metric a row."""
    metrics = run.metrics or {}
    columns = metric_columns(run)
    if not columns:
        return ""
    header = f"{'metric':<14}" + "".join(f"{title:>16}" for title, _ in columns)
    lines = [header, "-" * len(header)]
    for name in _shown_metrics(metrics):
        cells = "".join(f"{values.get(name, float('nan')):>16.4f}" for _, values in columns)
        lines.append(f"{name:<14}{cells}")
    users = int(metrics["candidate"].get("users", 0))
    lines.append(f"evaluated on {users} users with held-out events")
    note = champion_note(metrics)
    if note:
        lines.append(note)
    return "\n".join(lines)


def champion_note(metrics: dict) -> str:
    """What the champion columns mean, or why there are none."""
    version = metrics.get("champion_version")
    if metrics.get("champion"):
        return (
            f"candidate* and champion* v{version} are measured on the same "
            f"{metrics.get('champion_holdout_events', '?')} held-out events, those newer than "
            "the champion's data (so neither is judged on events it was trained on); the "
            "champion gate compares these two columns"
        )
    if metrics.get("champion_error"):
        return f"champion v{version} not evaluated: {metrics['champion_error']}"
    if version is not None:
        return (
            f"champion v{version} not compared: no held-out event is newer than its data "
            "(see the champion gate for what the policy decided)"
        )
    return ""


def hyperparameters_text(hyperparameters: dict) -> str:
    """``ease: lambda=300.0, top_k=200, ...`` (what a run fits) in the schema's order (a
    PostgreSQL JSON column keeps none), or "" when unrecorded."""
    values = dict(hyperparameters or {})
    name = values.pop("family", None)
    if name == Algorithm.AUTO:
        order = [*SEARCH_SETTINGS, *RUN_SETTINGS]
        names = sorted(values, key=lambda n: order.index(n) if n in order else len(order))
        return "auto: " + ", ".join(f"{n}={values[n]}" for n in names)
    family = FAMILIES.get(name)
    if family is None:
        return ""
    order = [*(p.name for p in family.params), *RUN_SETTINGS]
    names = sorted(values, key=lambda n: order.index(n) if n in order else len(order))
    return f"{family.name}: " + ", ".join(f"{name}={values[name]}" for name in names)


def search_text(search: dict) -> str:
    """``41 trials in 30.0 s of a 30 s budget; ease won: ...`` (an auto run's search)."""
    trials = search.get("trials") or []
    done = f"{len(trials)} trials"
    if "seconds" not in search:
        return f"{done} so far of a {search.get('budget_seconds', 0):g} s budget"
    return (
        f"{done} in {search['seconds']:.1f} s of a {search['budget_seconds']:g} s budget; "
        f"{outcome_text(search)}"
    )


def render_run_summary(run: TrainingRun) -> str:
    lines = [f"Run #{run.pk} of {run.recommender.name!r}: {run.status}"]
    if run.hyperparameters:
        lines.append(f"model: {hyperparameters_text(run.hyperparameters)}")
    if run.search:
        lines.append(f"search: {search_text(run.search)}")
    if run.phase_timings:
        timings = ", ".join(f"{phase} {secs:.2f}s" for phase, secs in run.phase_timings.items())
        lines.append(f"phases: {timings}")
    stats = run.data_stats or {}
    if stats:
        lines.append(
            f"data: {stats.get('events', 0)} events, {stats.get('users', 0)} users, "
            f"{stats.get('items', 0)} items, density {stats.get('density', 0):.5f}"
        )
    table = render_metric_table(run)
    if table:
        lines += ["", table, ""]
    for gate in run.gate_results or []:
        mark = "skip" if gate.get("skipped") else ("pass" if gate["passed"] else "FAIL")
        lines.append(f"  [{mark}] {gate['name']}: {gate['message']}")
    if run.decision:
        lines.append(f"decision: {run.get_decision_display()} — {run.decision_reason}")
    if run.version_id:
        version = run.version
        lines.append(f"version: v{version.number} ({version.status}), {version.artifact_uri}")
    if run.error:
        lines.append(f"error: {run.error}")
    return "\n".join(lines)
