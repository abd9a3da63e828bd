"""The shared development corpus (``../shared/corpus``): where it is and its ground-truth rows."""

from __future__ import annotations

import csv
import os
from pathlib import Path


def corpus_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$CRATEDIG_CORPUS``, else ``~/.cache/cratedig-corpus``."""
    return Path(root or os.environ.get("CRATEDIG_CORPUS", Path.home() / ".cache/cratedig-corpus"))


def _rows(table: Path) -> list[dict[str, str]]:
    """Rows of a corpus CSV whose ``file`` exists, ``file`` made absolute; empty when the table is not built."""
    if not table.exists():
        return []
    with open(table, newline="") as fh:
        rows = [dict(r, file=str(table.parent / r["file"])) for r in csv.DictReader(fh)]
    return [r for r in rows if Path(r["file"]).exists()]


def chorale_rows(root: str | os.PathLike | None = None, folder: str = "groundtruth") -> list[dict[str, str]]:
    """Rows of ``FOLDER/ground_truth.csv`` (``file``, ``bpm``, ``key``, ``source``): the rendered test chorales,
    or with ``folder='recipe_dev'`` the development set of ``bench/render_training_chorales.py --recipe-dev``."""
    return _rows(corpus_root(root) / folder / "ground_truth.csv")


#: Renderings of the training chorales (``bench/render_training_chorales.py``) and their folders.
RENDERINGS = {"varied": "", "continuo": "continuo", "recipe": "recipe"}


def training_rows(split: str, rendering: str = "varied", root: str | os.PathLike | None = None) -> list[dict[str, str]]:
    """Rows (``file``, ``bpm``, ``split``, ``source``, ``programs``, ``start_s``) of one ``split`` (``'train'``
    or ``'check'``) of one rendering of the training chorales: ``'varied'`` ensembles, ``'continuo'`` (strings
    over a piano bass) or ``'recipe'`` (the test set's recipe: every voice a piano)."""
    table = corpus_root(root) / "training" / RENDERINGS[rendering] / "training.csv"
    return [r for r in _rows(table) if r["split"] == split]
