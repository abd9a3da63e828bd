"""Paths cratedig derives from the catalog's."""

from __future__ import annotations

from flows.settings import default_parquet_dir


def test_two_catalogs_in_one_folder_export_to_their_own_parquet_folders(tmp_path):
    assert default_parquet_dir(tmp_path / "catalog.duckdb") == tmp_path / "parquet"  # data/parquet, as documented
    mine, big = default_parquet_dir(tmp_path / "my.duckdb"), default_parquet_dir(tmp_path / "big2.duckdb")
    assert mine == tmp_path / "my_parquet" and big == tmp_path / "big2_parquet"
