"""cratedig's work: pure, typed functions (scan, validate, decode, features, catalog, similarity).

Nothing in this package imports Prefect except :mod:`tasks.prefect_tasks`, which wraps the plain
functions as Prefect tasks at the edge.
"""
