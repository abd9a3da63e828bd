"""How a library is named in Prefect: its slug, the tags of its runs and its concurrency limit (no Prefect import)."""

from __future__ import annotations

import hashlib
import os
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


def library_key(library: str | Path) -> str:
    """``<slug>-<8 hex of the resolved path>``: the hash keeps two libraries with the same folder name apart."""
    # os.fsencode: a folder name may hold bytes that are not UTF-8 (str.encode refused them).
    digest = hashlib.blake2b(os.fsencode(Path(library).resolve()), digest_size=4).hexdigest()
    return f"{library_slug(library)[:60]}-{digest}"


def library_limit_name(library: str | Path) -> str:
    """Name of the library's global concurrency limit: ``cratedig-library-<slug>-<8 hex of the path>``."""
    return f"cratedig-library-{library_key(library)}"


def served_key(library: str | Path, catalog: str | Path) -> str:
    """What a served deployment's name ends with: ``<slug>-<8 hex of the library and catalog paths>``.

    Two libraries served on the same schedule (or one library into two catalogs) are two deployments: under
    one name, the last to register took the schedule and the other library was never re-analysed again.
    """
    key = os.fsencode(Path(library).resolve()) + b"\0" + os.fsencode(Path(catalog).resolve())
    return f"{library_slug(library)[:30]}-{hashlib.blake2b(key, digest_size=4).hexdigest()}"
