"""The catalog: walking a library and planning what to analyse (:mod:`.scan`), and the DuckDB store with its
migrations, runs, rejects and Parquet export (:mod:`.store`).
"""
