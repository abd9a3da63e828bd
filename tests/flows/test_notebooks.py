"""Both notebooks run headless (nbclient) against a freshly analysed catalog, and are committed without outputs."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.similarity.families import build_family_catalog

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="session")
def analysed_catalog(tmp_path_factory) -> Path:
    return build_family_catalog(tmp_path_factory.mktemp("similarity"))[0]


def test_both_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_library_overview.ipynb", "02_similarity.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear outputs before commit"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, analysed_catalog, monkeypatch):
    monkeypatch.setenv("CRATEDIG_CATALOG", str(analysed_catalog))
    nb = nbformat.read(path, as_version=4)
    # Any error in any cell raises CellExecutionError, which fails the test with the traceback.
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure was drawn"


HOSTILE_TITLE = '<img src=x onerror="alert(1)"><b>B</b> $\\undefinedcmd{x}$'


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_a_first_run_catalog_and_shows_titles_as_text(path, analysed_catalog, tmp_path, monkeypatch):
    # A title is text from a file: it went into HTML unescaped (notebook 02) and into matplotlib as TeX, which
    # failed the map (notebook 01). A catalog whose first run has not refreshed its index yet (under way, or
    # stopped) failed both notebooks, which read similarity_index.
    import shutil

    from tasks.catalog.store import open_catalog

    catalog = tmp_path / "first-run.duckdb"
    shutil.copy(analysed_catalog, catalog)
    con = open_catalog(catalog)
    con.execute("UPDATE tracks SET title = ?", [HOSTILE_TITLE])
    seed = "SELECT path FROM tracks WHERE status = 'analyzed' ORDER BY path LIMIT 1"  # notebook 02's seed
    (gone,) = con.execute(seed).fetchall()
    con.execute("DELETE FROM similarity_stats")
    con.execute("DELETE FROM similarity_index")
    con.close()
    monkeypatch.setenv("CRATEDIG_CATALOG", str(catalog))
    nb = nbformat.read(path, as_version=4)
    audio = Path(gone[0])
    kept = audio.read_bytes()
    audio.unlink()
    try:
        NotebookClient(
            nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        ).execute()
    finally:
        audio.write_bytes(kept)  # the file belongs to the session's library
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert not [h for h in shown if "<img src=x" in h]
    if path.stem.startswith("02"):
        assert any("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in h for h in shown)
        # JupyterLab typesets $...$ in HTML output: no two dollars of a title share a text node (in the lines the
        # notebook writes; polars' own tables are not mended).
        assert not [h for h in shown if "<table" not in h and re.search(r"\$[^<$]*\$", h)], shown
        assert any("no excerpt:" in h for h in shown)  # a file deleted since the analysis leaves its line
