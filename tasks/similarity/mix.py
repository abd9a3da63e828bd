"""What can I play next? :func:`build_mix` chains nearest neighbours that obey the mixing rules;
:func:`write_m3u` saves a set as a playlist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import duckdb
import numpy as np
import polars as pl

from tasks.audio.identity import text_to_path
from tasks.durable import write_atomically
from tasks.similarity.query import resolve_query
from tasks.similarity.search import similar_tracks


def build_mix(
    con: duckdb.DuckDBPyConnection,
    seed: Any,
    length: int = 20,
    *,
    bpm_window: float | None = 6.0,
    harmonic: bool = True,
    metric: str = "cosine",
) -> pl.DataFrame:
    """A set of up to ``length`` tracks starting at ``seed``, each the nearest unplayed neighbour of the
    one before that is tempo- and key-compatible with it.

    Greedy, one exact search per step. No track is played twice, nor a duplicate of one played
    (same fingerprint or title/artist). Stops early when no compatible track is left.

    Parameters
    ----------
    seed : str or int
        A path, track id or title/artist substring (:func:`tasks.similarity.index.resolve_query`).
    bpm_window : float or None
        Tempo window in percent (half/double time allowed); ``None`` = any tempo.
    harmonic : bool
        Require Camelot compatibility between consecutive tracks.

    Returns
    -------
    polars.DataFrame
        ``position`` (1..), ``track_id, path, title, artist, bpm, key, key_camelot, duration_s`` and
        ``distance`` to the previous track (0 for the seed).
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    current = resolve_query(con, seed)[0]
    played, steps = [current], [0.0]
    while len(played) < length:
        nxt = similar_tracks(con, current, 1, metric=metric, bpm_window=bpm_window, harmonic=harmonic, exclude=played)
        if nxt.height == 0:
            break
        current = int(nxt["track_id"][0])
        played.append(current)
        steps.append(float(nxt["distance"][0]))
    order = pl.DataFrame(
        {"position": range(1, len(played) + 1), "track_id": played, "distance": steps},
        schema={"position": pl.Int64, "track_id": pl.Int64, "distance": pl.Float64},
    )
    meta = con.sql(
        """SELECT track_id, path, title, artist, bpm, "key", key_camelot, duration_s
                      FROM effective_tracks WHERE track_id IN (SELECT unnest(?::BIGINT[]))""",
        params=[played],
    ).pl()
    return (
        order.join(meta, on="track_id", how="left")
        .sort("position")
        .select(
            "position", "track_id", "path", "title", "artist", "bpm", "key", "key_camelot", "duration_s", "distance"
        )
    )


@dataclass(frozen=True)
class Playlist:
    """What :func:`write_m3u` wrote: the file, how many entries, and the paths it had to leave out."""

    path: Path
    written: int
    skipped: tuple[str, ...] = ()


#: Characters that end an M3U line: a path holding one would add lines of its own to the playlist.
_LINE_BREAKS = re.compile("[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def write_m3u(rows: pl.DataFrame | Iterable[dict[str, Any]], path: str | Path) -> Playlist:
    """Write an extended M3U playlist (UTF-8) of ``rows`` in order: exactly two lines per track.

    Each row needs ``path``; ``duration_s``, ``title`` and ``artist`` fill ``#EXTINF`` when present (their
    control characters become spaces). A path with a line break cannot be one M3U line, and escaping it
    would name another file: such tracks are left out and listed in :attr:`Playlist.skipped`. Catalog
    paths with escaped undecodable bytes are written back as the original bytes. Written atomically
    (:func:`tasks.durable.write_atomically`: through a link, into a pipe).
    """
    items = rows.to_dicts() if isinstance(rows, pl.DataFrame) else [dict(r) for r in rows]
    lines = ["#EXTM3U"]
    skipped = []
    for r in items:
        fs_path = text_to_path(r["path"])
        if _LINE_BREAKS.search(fs_path):
            skipped.append(r["path"])
            continue
        dur = r.get("duration_s")
        secs = int(round(dur)) if dur is not None and np.isfinite(dur) else -1
        title, artist = r.get("title"), r.get("artist")
        label = f"{artist} - {title}" if title and artist else (title or Path(r["path"]).stem)
        lines += [_CONTROLS.sub(" ", f"#EXTINF:{secs},{label}"), fs_path]
    text = "\n".join(lines) + "\n"
    path = write_atomically(path, lambda f: f.write(text.encode("utf-8", "surrogateescape")))
    return Playlist(path, len(items) - len(skipped), tuple(skipped))
