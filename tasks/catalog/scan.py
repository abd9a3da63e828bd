"""Diff a library's inventory (:func:`tasks.catalog.walk.walk_library`) against the catalog, fingerprinting files
cheaply: set operations on polars frames, never a query per file.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import polars as pl

from tasks.audio.identity import fingerprint, text_to_path
from tasks.constants import ARHYTHMIC_ONLY_VERSIONS, BPM_RANGE, EMBEDDING_VERSION, RANGE_ONLY_VERSIONS
from tasks.vocabulary import TempoReason, TrackStatus


@dataclass
class ScanPlan:
    """The diff between a walk and the catalog.

    Each frame has ``path``, ``size_bytes``, ``mtime_ns`` and, where the catalog knows the file,
    ``track_id``; ``moved`` has ``old_path`` and ``track_id``; ``missing`` has ``track_id`` and ``path``.
    """

    new: pl.DataFrame
    changed: pl.DataFrame
    outdated: pl.DataFrame
    unchanged: pl.DataFrame
    moved: pl.DataFrame
    missing: pl.DataFrame
    #: ``(track_id, holder)``: a changed file's track and another track whose bytes the file now holds (names
    #: swapped, a file copied over another). Unless the two held the same audio (identical copies, retagged alike),
    #: its corrections were made for other audio: :func:`tasks.catalog.store.apply_plan` clears them.
    other_audio: list[tuple[int, int]] = field(default_factory=list)

    @property
    def to_analyze(self) -> pl.DataFrame:
        """Every file that needs analysing: new, changed and outdated (older analyzer_version or failed)."""
        cols = ["path", "size_bytes", "mtime_ns", "track_id"]
        return pl.concat([self.new.select(cols), self.changed.select(cols), self.outdated.select(cols)])

    def restricted(self, *, modified_since_ns: int | None = None, under: list[str] | None = None) -> "ScanPlan":
        """The same plan analysing only files modified at or after ``modified_since_ns`` and/or under one of
        the ``under`` path prefixes; the rest of the work is left for a later run (moves and missing files
        are still recorded)."""
        keep = pl.lit(True)
        if modified_since_ns is not None:
            keep = keep & (pl.col("mtime_ns") >= modified_since_ns)
        if under:
            prefixes = [p.rstrip("/") + "/" for p in under]
            keep = keep & pl.any_horizontal([pl.col("path").str.starts_with(p) for p in prefixes])
        return ScanPlan(
            new=self.new.filter(keep),
            changed=self.changed.filter(keep),
            outdated=self.outdated.filter(keep),
            unchanged=self.unchanged,
            moved=self.moved,
            missing=self.missing,
            other_audio=self.other_audio,
        )

    def batches(self, batch_size: int) -> list[list[dict]]:
        """The files to analyse as batches of at most ``batch_size`` small dicts (path, size, mtime, track_id),
        largest files first: the run then ends on short files, and no worker idles long while another
        finishes a mix (longest-processing-time-first scheduling)."""
        rows = self.to_analyze.sort(["size_bytes", "path"], descending=[True, False]).to_dicts()
        return [rows[i : i + batch_size] for i in range(0, len(rows), max(1, batch_size))]

    def counts(self) -> dict[str, int]:
        return {
            name: getattr(self, name).height for name in ("new", "changed", "outdated", "unchanged", "moved", "missing")
        }


def required_version(analyzer_version: int, *, at_default: bool, arhythmic: bool) -> int:
    """The oldest analyzer version whose rows of one kind are current under ``analyzer_version``: the newest
    version up to it whose change reaches them. A version in :data:`~tasks.constants.RANGE_ONLY_VERSIONS` does
    not reach rows made at :data:`~tasks.constants.BPM_RANGE` (``at_default``); one in
    :data:`~tasks.constants.ARHYTHMIC_ONLY_VERSIONS` reaches only rows given no tempo as ``ARHYTHMIC``
    (``arhythmic``; pass True when a row's reason is not known)."""

    def reaches(v: int) -> bool:
        return not ((at_default and v in RANGE_ONLY_VERSIONS) or (not arhythmic and v in ARHYTHMIC_ONLY_VERSIONS))

    return max((v for v in range(1, analyzer_version + 1) if reaches(v)), default=analyzer_version)


def _left(path: str, library: str | None) -> bool:
    """Whether the file ``path`` left its library: it is not there, and the nearest folder above it that is there
    holds something and lies in its library (its own folder, when the catalog names no library for it). An empty
    folder may be the mount point of an unplugged drive, inside a library or as its root; a folder moved away
    with the file (an album) is no such sign."""
    if os.path.lexists(path):
        return False
    root = (library or os.path.dirname(path)).rstrip("/") + "/"
    folder = os.path.dirname(path)
    while not os.path.isdir(folder) and (folder + "/").startswith(root) and folder != "/":
        folder = os.path.dirname(folder)
    if not (folder + "/").startswith(root):  # gone up to the library and past it: the library is not there
        return False
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is not None
    except OSError:
        return False


#: What a move's source needs: the track and what identifies its file.
_SOURCE_COLUMNS = ["track_id", "path", "size_bytes", "fingerprint", "status", "analyzer_version"]


def plan_scan(
    inventory: pl.DataFrame,
    known: pl.DataFrame,
    *,
    analyzer_version: int,
    embedding_version: int = EMBEDDING_VERSION,
    force: bool = False,
    bpm_range: tuple[float, float] | None = None,
    unreadable_dirs: list[str] | None = None,
    fingerprint_fn=None,
    elsewhere=None,
) -> ScanPlan:
    """Diff a walk against the catalog.

    Parameters
    ----------
    inventory : pl.DataFrame
        From :func:`walk_library`: ``path``, ``size_bytes``, ``mtime_ns``.
    known : pl.DataFrame
        The catalog's tracks: ``track_id``, ``path``, ``size_bytes``, ``mtime_ns``, ``fingerprint``, ``status``,
        ``analyzer_version`` (null when never analysed).
    analyzer_version : int
        Current version: analysed rows with an older one are ``outdated``, except rows made by a version no
        older than :func:`required_version` says is enough for their kind (made at the default range; given no
        tempo as ``ARHYTHMIC``: ``known``'s ``tempo_reason``).
    embedding_version : int
        Current similarity embedding version: analysed rows with an older one (``known``'s ``embedding_version``,
        when it has the column and the row a value) are ``outdated`` too, whatever their analyzer version: the
        similarity index holds only the newest version's embeddings, so a bump alone would leave the rest out.
    force : bool
        Treat every present file as outdated.
    bpm_range : (float, float), optional
        The run's preferred tempo range, BPM: analysed rows made with another (``known``'s
        ``bpm_range_lo`` / ``bpm_range_hi``) are ``outdated`` too.
    unreadable_dirs : list of str, optional
        Folders the walk could not list and dangling links
        (:attr:`tasks.catalog.walk.ScanResult.unreadable_dirs`): the catalog's tracks at or under them are left as
        they are, neither missing nor moved.
    fingerprint_fn : callable, optional
        ``(path text, size_bytes) -> str`` (default: :func:`~tasks.audio.identity.fingerprint` of the
        file the text names); only called for paths the catalog does not know.
    elsewhere : callable, optional
        ``(sizes) -> DataFrame``: the catalog's tracks outside this library with one of these sizes (columns as
        ``known``'s, plus ``library``: the root of the other library, or null). Those already ``missing``, or whose
        file left a library folder that is still there, can be where a new file came from: a move between two
        libraries that share a catalog keeps its track, analysis and corrections. A file whose library is gone
        too (an unplugged drive) proves nothing: a copy of it must not take its track.
    """
    lo, hi = BPM_RANGE
    at_default = (
        (pl.col("bpm_range_lo") == lo) & (pl.col("bpm_range_hi") == hi)
        if {"bpm_range_lo", "bpm_range_hi"} <= set(known.columns)
        else pl.lit(False)  # ranges unknown: every row needs the current version
    )
    arhythmic = (
        (pl.col("tempo_reason") == TempoReason.ARHYTHMIC.value).fill_null(False)
        if "tempo_reason" in known.columns
        else pl.lit(True)  # reasons unknown: every version reaches every row
    )
    at_default = at_default.fill_null(False)

    def required(d: bool, a: bool) -> pl.Expr:
        return pl.lit(required_version(analyzer_version, at_default=d, arhythmic=a))

    known = known.with_columns(
        pl.when(at_default & arhythmic)
        .then(required(True, True))
        .when(at_default)
        .then(required(True, False))
        .when(arhythmic)
        .then(required(False, True))
        .otherwise(required(False, False))
        .alias("required_version")
    )
    # Rows made with another preferred range or another similarity embedding than this run would make.
    made_otherwise = (
        pl.lit(False)
        if bpm_range is None
        else (pl.col("bpm_range_lo") != bpm_range[0]) | (pl.col("bpm_range_hi") != bpm_range[1])
    )
    if "embedding_version" in known.columns:
        # Older only, as for analyzer_version: an older install sharing the catalog leaves newer rows alone.
        made_otherwise = made_otherwise | (pl.col("embedding_version") < embedding_version)
    known = known.with_columns(made_otherwise.fill_null(False).alias("made_otherwise"))
    if unreadable_dirs:
        hidden = pl.any_horizontal(
            [(pl.col("path") == d) | pl.col("path").str.starts_with(d.rstrip("/") + "/") for d in unreadable_dirs]
        )
        known = known.filter(~hidden)
    catalogued = known.rename({"size_bytes": "k_size", "mtime_ns": "k_mtime"})
    catalogued = catalogued.select(
        "path", "track_id", "k_size", "k_mtime", "status", "analyzer_version", "required_version", "made_otherwise"
    )
    joined = inventory.join(catalogued, on="path", how="left")
    unseen = joined.filter(pl.col("track_id").is_null()).select("path", "size_bytes", "mtime_ns")
    seen = joined.filter(pl.col("track_id").is_not_null())
    same = (pl.col("size_bytes") == pl.col("k_size")) & (pl.col("mtime_ns") == pl.col("k_mtime"))
    changed = seen.filter(~same)
    same_files = seen.filter(same)
    fp = fingerprint_fn or (lambda text, size: fingerprint(text_to_path(text), size))
    other_audio = _holding_others_bytes(changed, known, fp)
    needs_work = (
        (pl.col("status") == TrackStatus.FAILED.value)
        | (pl.col("status") == TrackStatus.MISSING.value)
        | (
            (pl.col("status") == TrackStatus.ANALYZED.value)
            & ((pl.col("analyzer_version").fill_null(-1) < pl.col("required_version")) | pl.col("made_otherwise"))
        )
    )
    if force:
        needs_work = pl.col("status") != TrackStatus.REJECTED.value
    outdated = same_files.filter(needs_work)
    unchanged = same_files.filter(~needs_work)

    # A file the catalog does not know whose fingerprint matches a known file that is gone: moved.
    # Files already missing since an earlier run count too (moved while cratedig was not looking).
    gone = known.join(inventory.select("path"), on="path", how="anti")
    moved = pl.DataFrame(
        schema={
            "path": pl.Utf8,
            "size_bytes": pl.Int64,
            "mtime_ns": pl.Int64,
            "track_id": pl.Int64,
            "old_path": pl.Utf8,
        }
    )
    new = unseen.with_columns(pl.lit(None, dtype=pl.Int64).alias("track_id"))
    sources = gone.select(_SOURCE_COLUMNS)
    if unseen.height and elsewhere is not None:
        away = elsewhere(unseen["size_bytes"].unique().to_list())
        if away.height:  # only these few are looked at on disk
            left = [
                st == TrackStatus.MISSING.value or _left(text_to_path(p), lib and text_to_path(lib))
                for p, st, lib in away.select("path", "status", "library").iter_rows()
            ]
            away = away.filter(pl.Series(left, dtype=pl.Boolean)).select(_SOURCE_COLUMNS)
            sources = pl.concat([sources, away], how="vertical_relaxed")
    if unseen.height and sources.height:
        candidates = unseen.join(sources.select(pl.col("size_bytes")).unique(), on="size_bytes", how="semi")
        if candidates.height:
            fps = [fp(p, s) for p, s in zip(candidates["path"], candidates["size_bytes"])]
            candidates = candidates.with_columns(pl.Series("fingerprint", fps, dtype=pl.Utf8))
            was = sources.rename({"path": "old_path", "status": "old_status"})
            was = was.select("fingerprint", "track_id", "old_path", "old_status", "analyzer_version")
            matched = candidates.join(was, on="fingerprint", how="inner")
            matched = matched.unique("track_id", keep="first").unique("path", keep="first")
            moved = matched.select("path", "size_bytes", "mtime_ns", "track_id", "old_path")
            new = new.join(moved.select("path"), on="path", how="anti")
    missing = (
        gone.filter(pl.col("status") != TrackStatus.MISSING.value)
        .join(moved.select("track_id"), on="track_id", how="anti")
        .select("track_id", "path")
    )
    cols = ["path", "size_bytes", "mtime_ns", "track_id"]
    return ScanPlan(
        new=new.select(cols),
        changed=changed.select(cols),
        outdated=outdated.select(cols),
        unchanged=unchanged.select(cols),
        moved=moved,
        missing=missing,
        other_audio=other_audio,
    )


def _holding_others_bytes(changed: pl.DataFrame, known: pl.DataFrame, fp) -> list[tuple[int, int]]:
    """``(track, holder)``: tracks of ``changed`` whose file now holds the bytes another known track holds
    (fingerprint ``fp(path text, size)``): two names swapped, or one file copied over another. Durations cannot
    tell two recordings of one length apart; the bytes can. A file whose bytes are still its own track's (touched,
    or one of two identical copies) is not one. Only a file whose new size another track has is read (a
    fingerprint starts with the size); a file that cannot be read now is left to the analysis."""
    if not changed.height or "fingerprint" not in known.columns:
        return []
    # Only the tracks of a size some changed file now has can hold its bytes: a few, of a million.
    near = known.join(changed.select("size_bytes").unique(), on="size_bytes", how="semi")
    holders: dict[str, set[int]] = defaultdict(set)
    for fingerprint_, track_id in near.select("fingerprint", "track_id").iter_rows():
        holders[fingerprint_].add(track_id)
    with_size = Counter(near["size_bytes"].to_list())
    ids = changed.select("track_id")
    own = {
        t: (f, z)
        for t, f, z in known.join(ids, on="track_id", how="semi")
        .select("track_id", "fingerprint", "size_bytes")
        .iter_rows()
    }
    out = []
    for path, size, track_id in changed.select("path", "size_bytes", "track_id").iter_rows():
        own_fingerprint, own_size = own.get(track_id, (None, None))
        if with_size[size] - (own_size == size) <= 0:
            continue  # no other track has this size: no other track's bytes (a retag that kept the size, too)
        try:
            now = fp(path, size)
        except OSError:
            continue
        others = holders[now] - {track_id}
        if now != own_fingerprint and others:
            out.append((track_id, min(others)))
    return out
