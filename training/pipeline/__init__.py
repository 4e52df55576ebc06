"""The pure numeric half of training: matrices, holdout split, metrics, scorers, gates.

No Django imports here: these modules take numpy / scipy arrays and return them, so they
are unit-tested in milliseconds. The Django-aware orchestration (loading the event window,
recording progress on the ``TrainingRun``) calls into them.
"""
