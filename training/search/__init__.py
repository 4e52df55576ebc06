"""The ``auto`` algorithm's search, pure (numpy, scipy, Optuna; no Django): the search
space derived from the families' schema (``space``), the validation split carved from a
run's training window (``validation``), the budget and its clock (``budget``) and the
search itself (``study``). ``training.run_search`` runs it inside a training run."""
