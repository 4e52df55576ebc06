"""The ``auto`` algorithm's search, pure (numpy, scipy, Optuna; no Django settings): the
search space derived from the families' schema (``space``), the validation split carved
from a run's training window (``validation``), the budget and its clock (``budget``),
the search itself (``study``), its trial records (``records``, plain data) and what it
came to (``outcome``). ``training.run_search``
runs it inside a training run; ``bench/quality.py`` runs it offline."""
