"""The catalog's public contract: DuckDB DDL (``catalog.sql``) and pandera (polars) row schemas."""
