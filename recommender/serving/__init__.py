"""Serving: one immutable loaded model per recommender per process, hot-swapped.

- ``catalog``: the catalogue's columns, read once and patched; the change stamps.
- ``model``: the active version and its artifact, loaded, verified and self-tested.
- ``scoring``: pure numpy scoring and ranking over item positions.
- ``state``: the immutable per-recommender state built from a model and a catalogue.
- ``fallback``: the popularity state served while no model is loaded.
- ``registry``: the per-process registry and its watcher thread that loads and swaps.
- ``responses``: what the API calls (recommendations, similar items).
- ``signal``: the cache key promote / rollback bump so every process reloads.
- ``metrics``: serving's Prometheus gauges and counters.
"""
