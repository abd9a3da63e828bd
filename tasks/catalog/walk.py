"""Walk a library: every audio file under a folder, with its size and mtime, and what cannot be read.

``os.scandir``: one ``stat`` per entry, no per-file Python objects beyond a tuple.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from tasks.audio.identity import path_to_text
from tasks.constants import AUDIO_EXTENSIONS
from tasks.errors import TRANSIENT_ERRNOS
from tasks.vocabulary import Reason

INVENTORY_SCHEMA = {"path": pl.Utf8, "size_bytes": pl.Int64, "mtime_ns": pl.Int64}


@dataclass
class ScanResult:
    """What a walk found.

    Attributes
    ----------
    files : pl.DataFrame
        Audio-extension regular files: ``path`` (absolute), ``size_bytes``, ``mtime_ns``.
    n_ignored : int
        Entries with another extension (counted, never rejected).
    problems : list of (path, reason, detail)
        Entries with an audio extension that cannot be read (dangling links, permission denied...), and
        folders that cannot be listed.
    unreadable_dirs : list of str
        The folders (path texts) that could not be listed, and dangling links (a link to a drive that is not
        mounted): what the catalog knows at or under them is unknown now, not missing.
    empty_root : str or None
        The root (path text) when it holds nothing at all: the mount point of an unplugged drive looks so.
    """

    files: pl.DataFrame
    n_ignored: int = 0
    problems: list[tuple[str, Reason, str]] = field(default_factory=list)
    unreadable_dirs: list[str] = field(default_factory=list)
    empty_root: str | None = None

    @property
    def unknown_dirs(self) -> list[str]:
        """Folders whose catalogued tracks are unknown now, not missing (``plan_scan``'s ``unreadable_dirs``): those
        that could not be listed, and an empty root. A library whose every file was deleted keeps its folders or
        other files; a drive that is not mounted leaves an empty folder, and marking its tracks missing would let
        a copy of one take its track (:func:`plan_scan`'s moves)."""
        return self.unreadable_dirs + ([self.empty_root] if self.empty_root else [])


def walk_library(root: str | Path, *, extensions: frozenset[str] = AUDIO_EXTENSIONS) -> ScanResult:
    """Recursively list the audio files under ``root``.

    Symlinks to directories are followed once: a directory reached twice (a loop, or two links to one
    folder) is walked only the first time. Dangling links with an audio extension are reported as
    ``UNREADABLE`` problems. A directory named like an audio file is walked as a directory.
    """
    root = os.path.abspath(os.fspath(root))
    paths: list[str] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    problems: list[tuple[str, Reason, str]] = []
    unreadable_dirs: list[str] = []
    n_ignored = 0
    seen_dirs: set[tuple[int, int]] = set()
    stack = [root]
    empty_root = None
    while stack:
        top = stack.pop()
        try:
            st = os.stat(top)
            if (st.st_dev, st.st_ino) in seen_dirs:
                continue
            seen_dirs.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(top))
            if top == root and not entries:
                empty_root = path_to_text(root)
        except OSError as exc:
            if exc.errno in TRANSIENT_ERRNOS:
                raise  # a share that hiccups: fail the walk (and retry it), never mark a whole folder missing
            problems.append((path_to_text(top), Reason.UNREADABLE, f"directory: {exc.strerror or exc}"))
            unreadable_dirs.append(path_to_text(top))
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=True):
                    stack.append(entry.path)
                    continue
            except OSError:
                pass
            ext = os.path.splitext(entry.name)[1].lower()
            if entry.is_symlink() and not os.path.exists(entry.path):
                # a link to a drive that is not mounted (to a folder or a file, named like audio or not): what the
                # catalog holds at or under it is unknown, not missing
                unreadable_dirs.append(path_to_text(entry.path))
            if ext not in extensions:
                n_ignored += 1
                continue
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                detail = "dangling symlink" if entry.is_symlink() else (exc.strerror or str(exc))
                problems.append((path_to_text(entry.path), Reason.UNREADABLE, detail))
                continue
            if not entry.is_file(follow_symlinks=True):
                problems.append((path_to_text(entry.path), Reason.UNREADABLE, "not a regular file"))
                continue
            paths.append(path_to_text(entry.path))
            sizes.append(st.st_size)
            mtimes.append(st.st_mtime_ns)
    files = pl.DataFrame({"path": paths, "size_bytes": sizes, "mtime_ns": mtimes}, schema=INVENTORY_SCHEMA)
    return ScanResult(
        files=files.sort("path"),
        n_ignored=n_ignored,
        problems=problems,
        unreadable_dirs=unreadable_dirs,
        empty_root=empty_root,
    )
