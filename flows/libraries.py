"""How a library is named in Prefect: its slug, the tags of its runs and its concurrency limit (no Prefect import)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

#: Tag on every cratedig run; each run also gets ``library:<slug>``.
PROJECT_TAG = "cratedig"


def library_slug(library: str | Path) -> str:
    """The library folder's name as lowercase letters, digits and dashes (``'My Music'`` → ``'my-music'``)."""
    return re.sub(r"[^a-z0-9]+", "-", Path(library).resolve().name.lower()).strip("-") or "library"


def library_tags(library: str | Path) -> list[str]:
    """Tags of a library's runs: ``['cratedig', 'library:<slug>']``."""
    return [PROJECT_TAG, f"library:{library_slug(library)}"]


def library_limit_name(library: str | Path) -> str:
    """Name of the library's global concurrency limit: ``cratedig-library-<slug>-<8 hex of the path>``.

    The hash of the resolved path keeps two libraries with the same folder name apart.
    """
    digest = hashlib.blake2b(str(Path(library).resolve()).encode(), digest_size=4).hexdigest()
    return f"cratedig-library-{library_slug(library)[:60]}-{digest}"
