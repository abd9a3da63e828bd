"""What a rescan makes of rejects that no longer hold and of folders that cannot be listed."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from flows.prefect_tasks import scan_library
from tasks.catalog.store import open_catalog, store_results
from tasks.constants import ANALYZER_VERSION, BPM_RANGE
from tasks.features.analyze import analyze_file


def _scan_and_store(library, con, run_id: str) -> dict:
    catalog = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][
        0
    ]
    from tasks.catalog.runs import start_run

    start_run(con, run_id, str(library), analyzer_version=ANALYZER_VERSION)  # runs.library: where libraries are
    plan, counts = scan_library.fn(str(library), catalog, run_id, analyzer_version=ANALYZER_VERSION)
    items = plan.to_analyze.to_dicts()
    if items:
        store_results(
            con,
            [analyze_file(i["path"], i["size_bytes"], i["mtime_ns"], track_id=i["track_id"]) for i in items],
            run_id,
        )
    return counts


def _tone(path, seconds: float = 1.0) -> None:
    sf.write(path, (0.3 * np.sin(np.arange(int(22050 * seconds)) / 7)).astype(np.float32), 22050)


def _analysed(tmp_path, libraries: list, tones: dict) -> object:
    """Write ``tones`` (path -> seconds), then scan and store each of ``libraries`` in turn into one new catalog."""
    for path, seconds in tones.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        _tone(path, seconds)
    con = open_catalog(tmp_path / "c.duckdb")
    for i, library in enumerate(libraries):
        _scan_and_store(library, con, f"setup{i}")
    return con


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "lib"
    (root / "sub").mkdir(parents=True)
    _tone(root / "a.wav")
    _tone(root / "sub" / "b.wav")
    (root / "page.mp3").write_text("<html><body>not audio</body></html>" * 20)
    os.symlink(root / "nowhere.flac", root / "dangling.flac")
    return root


def _rejects(con) -> dict:
    return dict(con.execute("SELECT path, reason FROM rejects").fetchall())


def test_rejects_of_deleted_files_are_cleared_and_history_kept(library, tmp_path):
    con = open_catalog(tmp_path / "c.duckdb")
    _scan_and_store(library, con, "r1")
    assert set(_rejects(con)) == {str(library / "page.mp3"), str(library / "dangling.flac")}
    (library / "page.mp3").unlink()
    (library / "dangling.flac").unlink()
    _scan_and_store(library, con, "r2")
    assert _rejects(con) == {}
    events = con.execute("SELECT event FROM track_events WHERE path = ?", [str(library / "page.mp3")]).fetchall()
    assert ("rejected",) in events  # the history stays
    con.close()


def test_an_unreadable_folder_leaves_its_tracks_as_they_were(library, tmp_path, monkeypatch):
    con = open_catalog(tmp_path / "c.duckdb")
    _scan_and_store(library, con, "r1")
    before = con.execute("SELECT path, status FROM tracks ORDER BY path").fetchall()
    real = os.scandir
    sub = str(library / "sub")

    def denied(path="."):
        if os.fspath(path) == sub:
            raise PermissionError(13, "Permission denied", sub)
        return real(path)

    monkeypatch.setattr(os, "scandir", denied)  # as root, chmod 000 would not stop the walk
    counts = _scan_and_store(library, con, "r2")
    assert counts["missing"] == 0
    assert con.execute("SELECT path, status FROM tracks ORDER BY path").fetchall() == before
    assert _rejects(con)[sub] == "UNREADABLE"
    monkeypatch.setattr(os, "scandir", real)
    counts = _scan_and_store(library, con, "r3")  # readable again: the folder's reject is cleared
    assert counts["missing"] == 0 and sub not in _rejects(con)
    assert con.execute("SELECT path, status FROM tracks ORDER BY path").fetchall() == before
    con.close()


@pytest.mark.parametrize("old_library_first", [False, True])
def test_a_move_between_two_libraries_of_one_catalog_keeps_the_track(tmp_path, old_library_first):
    """Two libraries share a catalog; a file moved from one into the other keeps its track, analysis and
    correction, whether the old library was scanned since (its row is then ``missing``) or not."""
    from tasks.catalog.corrections import Correction, set_correction

    one, two = tmp_path / "one", tmp_path / "two"
    con = _analysed(tmp_path, [one, two], {one / "x.wav": 2.0, one / "z.wav": 3.0, two / "y.wav": 1.0})
    (track_id,) = con.execute("SELECT track_id FROM tracks WHERE path LIKE '%x.wav'").fetchall()[0]
    set_correction(con, track_id, Correction(bpm=64.0), by="dj")
    (one / "x.wav").rename(two / "x.wav")
    if old_library_first:
        assert _scan_and_store(one, con, "r3")["missing"] == 1
    counts = _scan_and_store(two, con, "r4")
    assert (counts["moved"], counts["new"]) == (1, 0)
    rows = con.execute("SELECT track_id, path, status FROM tracks ORDER BY track_id").fetchall()
    assert (track_id, str(two / "x.wav"), "analyzed") in rows and len(rows) == 3
    assert con.execute("SELECT bpm FROM effective_tracks WHERE track_id = ?", [track_id]).fetchall() == [(64.0,)]
    assert _scan_and_store(one, con, "r5")["missing"] == 0  # the old library no longer claims it
    con.close()


def test_a_copy_does_not_take_the_track_of_a_file_on_an_unplugged_drive(tmp_path):
    """The other library's folder is gone (a drive unplugged): its file is not known to have moved, so a copy of
    it found meanwhile is a new track, and the original keeps its own when the drive is back."""
    import shutil

    usb, disk = tmp_path / "usb" / "lib", tmp_path / "disk"
    con = _analysed(tmp_path, [usb, disk], {usb / "b.wav": 2.0, disk / "c.wav": 1.0})
    (original,) = con.execute("SELECT track_id FROM tracks WHERE path LIKE '%b.wav'").fetchall()[0]
    shutil.copy(usb / "b.wav", disk / "b_copy.wav")
    (tmp_path / "usb").rename(tmp_path / "unplugged")
    counts = _scan_and_store(disk, con, "r3")
    assert (counts["moved"], counts["new"]) == (0, 1)
    (tmp_path / "unplugged").rename(tmp_path / "usb")
    assert _scan_and_store(usb, con, "r4")["new"] == 0
    assert con.execute("SELECT path FROM tracks WHERE track_id = ?", [original]).fetchall() == [(str(usb / "b.wav"),)]
    con.close()


def test_an_album_folder_moved_to_another_library_keeps_its_tracks(tmp_path):
    """The whole folder went with its file: the file's own folder is gone, but its library is there."""
    one, two = tmp_path / "one", tmp_path / "two"
    con = _analysed(tmp_path, [one, two], {one / "album" / "x.wav": 2.0, one / "root.wav": 3.0, two / "y.wav": 1.0})
    (track_id,) = con.execute("SELECT track_id FROM tracks WHERE path LIKE '%x.wav'").fetchall()[0]
    (one / "album").rename(two / "album")
    counts = _scan_and_store(two, con, "r3")
    assert (counts["moved"], counts["new"]) == (1, 0)
    assert con.execute("SELECT path FROM tracks WHERE track_id = ?", [track_id]).fetchall() == [
        (str(two / "album" / "x.wav"),)
    ]
    con.close()


def test_an_empty_library_folder_marks_nothing_missing(tmp_path):
    """An unplugged drive leaves an empty mount point: its tracks are not marked missing (which would let a copy
    of one take its track), and come back as they were."""
    import shutil

    usb, disk = tmp_path / "usb", tmp_path / "disk"
    disk.mkdir()
    con = _analysed(tmp_path, [usb], {usb / "b.wav": 2.0})
    (original,) = con.execute("SELECT track_id FROM tracks").fetchall()[0]
    shutil.copy(usb / "b.wav", disk / "b_copy.wav")
    (usb / "b.wav").rename(tmp_path / "away.wav")  # the mount point, empty
    assert _scan_and_store(usb, con, "r2")["missing"] == 0
    assert con.execute("SELECT status FROM tracks WHERE track_id = ?", [original]).fetchall() == [("analyzed",)]
    counts = _scan_and_store(disk, con, "r3")
    assert (counts["moved"], counts["new"]) == (0, 1)
    con.close()


def test_a_drive_mounted_inside_a_library_is_no_move_source_when_unplugged(tmp_path):
    """library/usb is a mount point: unplugged, it is an empty folder inside a library that is there."""
    import shutil

    library, other = tmp_path / "library", tmp_path / "other"
    other.mkdir()
    con = _analysed(tmp_path, [library], {library / "local" / "a.wav": 1.0, library / "usb" / "b.wav": 2.0})
    shutil.copy(library / "usb" / "b.wav", other / "b.wav")
    (library / "usb" / "b.wav").rename(tmp_path / "away.wav")  # the drive's content, gone with it
    counts = _scan_and_store(other, con, "r2")
    assert (counts["moved"], counts["new"]) == (0, 1)
    con.close()


@pytest.mark.parametrize("name", ["usb", "Live Set.flac", "linked.wav"])
def test_a_link_to_a_drive_that_is_not_mounted_marks_nothing_missing(tmp_path, name):
    """library/NAME is a symbolic link to the drive's folder (or, for linked.wav, to a file on it); unplugged,
    the link dangles: nothing at or under it is missing, the next idle check starts no run, and the tracks are
    there again when the drive is."""
    from tasks.catalog.preview import idle_run_counts
    from tasks.similarity.index import refresh_similarity_index

    library, drive = tmp_path / "library", tmp_path / "drive"
    con = _analysed(tmp_path, [], {drive / "b.wav": 2.0, library / "a.wav": 1.0})
    os.symlink(drive / "b.wav" if name == "linked.wav" else drive, library / name)
    assert _scan_and_store(library, con, "r2")["new"] == 2
    before = con.execute("SELECT track_id, path, status FROM tracks ORDER BY path").fetchall()
    drive.rename(tmp_path / "unplugged")
    counts = _scan_and_store(library, con, "r3")
    assert counts["missing"] == 0
    assert con.execute("SELECT track_id, path, status FROM tracks ORDER BY path").fetchall() == before
    refresh_similarity_index(con)
    con.close()
    idle = idle_run_counts(library, tmp_path / "c.duckdb", analyzer_version=ANALYZER_VERSION, bpm_range=BPM_RANGE)
    assert idle is not None and idle["missing"] == 0  # what the last run recorded is not work again
    (tmp_path / "unplugged").rename(drive)
    again = idle_run_counts(library, tmp_path / "c.duckdb", analyzer_version=ANALYZER_VERSION, bpm_range=BPM_RANGE)
    assert (again is None) == (name != "usb")  # a link named like audio left a reject that no longer holds
    con = open_catalog(tmp_path / "c.duckdb")
    assert _scan_and_store(library, con, "r4")["unchanged"] == 2
    assert con.execute("SELECT track_id, path, status FROM tracks ORDER BY path").fetchall() == before
    assert _rejects(con) == {}
    con.close()


def test_a_dangling_link_removed_is_work_for_the_next_analyze(tmp_path):
    """Two dangling links recorded; one removed: an idle analyze kept its reject for good."""
    from tasks.catalog.preview import idle_run_counts
    from tasks.similarity.index import refresh_similarity_index

    library = tmp_path / "library"
    con = _analysed(tmp_path, [], {library / "a.wav": 1.0})
    for name in ("x.wav", "y.flac"):
        os.symlink(tmp_path / "nowhere" / name, library / name)
    assert _scan_and_store(library, con, "r1")["unreadable"] == 2
    refresh_similarity_index(con)
    con.close()

    def idle():
        return idle_run_counts(library, tmp_path / "c.duckdb", analyzer_version=ANALYZER_VERSION, bpm_range=BPM_RANGE)

    assert idle() is not None  # both recorded already: nothing to do
    (library / "y.flac").unlink()
    assert idle() is None
    con = open_catalog(tmp_path / "c.duckdb")
    _scan_and_store(library, con, "r2")
    assert list(_rejects(con)) == [str(library / "x.wav")]
    con.close()


def test_a_rejected_file_moved_keeps_its_track_and_its_reason(library, tmp_path):
    con = open_catalog(tmp_path / "c.duckdb")
    _scan_and_store(library, con, "r1")
    page = library / "page.mp3"
    (track_id,) = con.execute("SELECT track_id FROM tracks WHERE path = ?", [str(page)]).fetchone()
    page.rename(library / "sub" / "page.mp3")  # moved in one step
    counts = _scan_and_store(library, con, "r2")
    assert counts["moved"] == 1 and counts["new"] == 0
    row = con.execute("SELECT track_id, status, reason FROM tracks WHERE path LIKE '%page.mp3'").fetchall()
    assert row == [(track_id, "rejected", "NOT_AUDIO")]
    assert _rejects(con).get(str(library / "sub" / "page.mp3")) == "NOT_AUDIO" and str(page) not in _rejects(con)
    (library / "dangling.flac").unlink()  # moved again, onto the name of a dangling link that was there
    (library / "sub" / "page.mp3").rename(library / "dangling.flac")
    _scan_and_store(library, con, "r2b")
    assert _rejects(con) == {str(library / "dangling.flac"): "NOT_AUDIO"}
    (library / "dangling.flac").rename(library / "sub" / "page.mp3")
    _scan_and_store(library, con, "r2c")
    (library / "sub" / "page.mp3").rename(tmp_path / "away.mp3")  # gone for a run: missing
    _scan_and_store(library, con, "r3")
    assert con.execute("SELECT status FROM tracks WHERE track_id = ?", [track_id]).fetchone() == ("missing",)
    (tmp_path / "away.mp3").rename(library / "page2.mp3")  # back under another name
    counts = _scan_and_store(library, con, "r4")
    assert counts["moved"] == 1 and counts["new"] == 0
    rows = con.execute("SELECT track_id, path, status, reason FROM tracks WHERE path LIKE '%page%'").fetchall()
    assert rows == [(track_id, str(library / "page2.mp3"), "failed", "NOT_AUDIO")]  # never 'analyzed'
    assert _rejects(con).get(str(library / "page2.mp3")) == "NOT_AUDIO"  # listed until the retry
    _scan_and_store(library, con, "r5")  # the retry finds it as it was
    assert con.execute("SELECT status, reason FROM tracks WHERE track_id = ?", [track_id]).fetchone() == (
        "rejected",
        "NOT_AUDIO",
    )
    assert con.execute("SELECT count(*) FROM tracks").fetchone() == (3,)  # a, b and page: no new row
    con.close()
