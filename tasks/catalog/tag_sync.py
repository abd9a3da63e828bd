"""Write the catalog's effective values (corrections over analysis) into the files' tags, and keep the catalog
in step so that the next run does not take the retagged file for a changed one.

A tag write changes a file's size, mtime and sampled-block fingerprint but not one decoded sample
(:func:`tasks.audio.tag_write.write_tags_safely` checks); the catalog row gets the new size, mtime,
fingerprint and tags in the same step, so the next scan sees the file as unchanged and does not re-analyse it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from tasks.audio.identity import fingerprint, path_to_text, text_to_path
from tasks.audio.tag_write import FIELDS, TagValues, TagWriteError, check_replaceable, tag_changes, write_tags_safely
from tasks.audio.tags import read_tags
from tasks.errors import CratedigError
from tasks.features.key.names import camelot, open_key, standard_key
from tasks.vocabulary import TrackStatus

#: ``--key-notation`` choices and how each writes a key name.
KEY_NOTATIONS: dict[str, Callable[[str], str]] = {"standard": standard_key, "camelot": camelot, "openkey": open_key}


@dataclass(frozen=True)
class TagJob:
    """One file to tag: its catalog id, path (as the catalog stores it) and the values to write."""

    track_id: int
    path: str
    values: TagValues


def check_fields(fields: list[str]) -> list[str]:
    """Field names of ``--fields``, checked against :data:`tasks.audio.tag_write.FIELDS`."""
    bad = [f for f in fields if f not in FIELDS]
    if bad or not fields:
        raise CratedigError(f"unknown field(s) {bad or fields}; choose from {', '.join(FIELDS)}")
    return fields


def tag_jobs(
    con: duckdb.DuckDBPyConnection, paths: list[str], *, fields: list[str], key_notation: str = "standard"
) -> tuple[list[TagJob], list[str]]:
    """The analysed tracks at ``paths`` (files, or folders: every track under them) and what to write to each.

    Returns ``(jobs, unknown)``: ``unknown`` lists the paths that match no analysed track. Tracks that are one
    file (a symbolic link and its target) get one job, the first by path.
    """
    to_text = KEY_NOTATIONS[key_notation]
    jobs: dict[int, TagJob] = {}
    unknown = []
    for given in paths:
        # As given, and with symbolic links resolved (a library is walked from its resolved root).
        forms = list(dict.fromkeys(path_to_text(f(given)) for f in (os.path.abspath, os.path.realpath)))
        rows = con.execute(
            'SELECT track_id, path, bpm, "key", loudness_lufs, replaygain_db, true_peak_dbtp FROM effective_tracks '
            "WHERE status = $status AND (list_contains($p, path) "
            "OR list_bool_or([starts_with(path, rtrim(x, '/') || '/') for x in $p])) ORDER BY path",
            {"p": forms, "status": TrackStatus.ANALYZED},
        ).fetchall()
        if not rows:
            unknown.append(given)
        for track_id, path, bpm, key, lufs, gain, peak in rows:
            values = TagValues(
                bpm=bpm if "bpm" in fields else None,
                key=to_text(key) if key and "key" in fields else None,
                loudness_lufs=lufs if "replaygain" in fields else None,
                replaygain_db=gain if "replaygain" in fields else None,
                peak_dbtp=peak if "replaygain" in fields else None,
            )
            jobs[track_id] = TagJob(track_id, path, values)
    # One job per file: a symbolic link to another track of the library names the same file, which a first
    # write changes (the second would then be refused as changed since its analysis).
    files: dict[str, TagJob] = {}
    for job in sorted(jobs.values(), key=lambda j: j.path):
        files.setdefault(os.path.realpath(text_to_path(job.path)), job)
    return list(files.values()), unknown


def _check_unchanged(con: duckdb.DuckDBPyConnection, job: TagJob) -> None:
    """Refuse a file that is not the one the catalog analysed (another size, mtime or fingerprint): the catalog's
    values describe that one, and written into another recording they would be wrong tags. The fingerprint
    (three 64 KiB reads) catches content replaced under the same size and mtime (``touch -r``, ``rsync -t``)."""
    path = text_to_path(job.path)
    st = os.stat(path)
    known = con.execute(
        "SELECT size_bytes, mtime_ns, fingerprint FROM tracks WHERE track_id = ?", [job.track_id]
    ).fetchall()
    if not known or known[0][:2] != (st.st_size, st.st_mtime_ns):
        raise TagWriteError(
            f"{display_path(job.path)} changed since it was analysed; not tagged (run cratedig analyze first)"
        )
    if known[0][2] != fingerprint(path, st.st_size):  # analyze goes by size and mtime: it would not see this
        raise TagWriteError(
            f"{display_path(job.path)} changed since it was analysed, under the same size and mtime; not tagged "
            "(touch the file, then run cratedig analyze)"
        )


def planned_changes(con: duckdb.DuckDBPyConnection, job: TagJob) -> list[tuple[str, str | None, str]]:
    """What :func:`apply` would change in the file: ``(tag, current, new)``; refused as :func:`apply` refuses a
    file that changed since it was analysed."""
    _check_unchanged(con, job)
    changes = tag_changes(text_to_path(job.path), job.values)
    if changes:  # what --apply would refuse, the dry run says
        check_replaceable(text_to_path(job.path))
    return changes


def apply(con: duckdb.DuckDBPyConnection, job: TagJob) -> list[tuple[str, str | None, str]]:
    """Write the job's tags (verified, atomic) and record the file's new size, mtime, fingerprint and tags.

    Raises :class:`tasks.audio.tag_write.TagWriteError` with the file untouched when the write is refused,
    and when the file changed since it was analysed (its catalog values are another recording's).
    """
    _check_unchanged(con, job)
    path = text_to_path(job.path)
    changes = write_tags_safely(path, job.values)
    if changes:
        st = os.stat(path)
        tags = read_tags(path)
        con.execute(
            "UPDATE tracks SET size_bytes = ?, mtime_ns = ?, fingerprint = ?, tag_bpm = ?, tag_key = ? "
            "WHERE track_id = ?",
            [st.st_size, st.st_mtime_ns, fingerprint(path, st.st_size), tags["tag_bpm"], tags["tag_key"], job.track_id],
        )
    return changes


def display_path(path: str) -> str:
    """A catalog path as shown to a user (the file name and its folder)."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name
