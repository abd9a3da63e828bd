"""The similarity tests' catalog of song families (``families.py``), built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.similarity.families import build_family_catalog


@pytest.fixture(scope="session")
def family_catalog(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    return build_family_catalog(tmp_path_factory.mktemp("similarity"))


@pytest.fixture()
def con(family_catalog):
    from tasks.catalog.store import open_catalog

    c = open_catalog(family_catalog[0], read_only=True)
    yield c
    c.close()
