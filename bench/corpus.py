"""The shared development corpus (``../shared/corpus``): where it is and its ground-truth rows."""
from __future__ import annotations

import csv
import os
from pathlib import Path


def corpus_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$CRATEDIG_CORPUS``, else ``~/.cache/cratedig-corpus``."""
    return Path(root or os.environ.get("CRATEDIG_CORPUS", Path.home() / ".cache/cratedig-corpus"))


def chorale_rows(root: str | os.PathLike | None = None) -> list[dict[str, str]]:
    """Rows of ``groundtruth/ground_truth.csv`` (``file`` made absolute; ``bpm``, ``key``, ``source``) whose
    file exists; empty when the corpus is not built."""
    gt = corpus_root(root) / "groundtruth" / "ground_truth.csv"
    if not gt.exists():
        return []
    with open(gt, newline="") as fh:
        rows = [dict(r, file=str(gt.parent / r["file"])) for r in csv.DictReader(fh)]
    return [r for r in rows if Path(r["file"]).exists()]
