"""Batch exports of recommendations run as background jobs (started from the admin):
``models`` tracks them, ``services`` creates and runs them; the ranking itself is
``recommender.serving.export``, shared with ``manage.py export_recommendations``."""
