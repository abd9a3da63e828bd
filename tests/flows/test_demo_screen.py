"""The demo's first screen is honest: known tempo and key beside the estimates, and the share right."""

from __future__ import annotations

from flows.cli.demo import compare_to_truth


def test_compare_to_truth_counts_right_octave_wrong_and_missing():
    truth = [
        {"file": "a.flac", "bpm": "120", "key": "A minor"},
        {"file": "b.flac", "bpm": "84", "key": "F minor"},
        {"file": "c.flac", "bpm": "170", "key": "G# major"},
        {"file": "d.flac", "bpm": "125", "key": "E minor"},
    ]
    estimates = {
        "a.flac": {"bpm": 119.7, "key": "A minor", "key_camelot": "8A"},
        "b.flac": {"bpm": 168.0, "key": "G# major", "key_camelot": "4B"},  # double time; the relative major
        "c.flac": {"bpm": 160.0, "key": "G# major", "key_camelot": "4B"},
    }
    rows = {r["file"]: r for r in compare_to_truth(truth, estimates)}
    assert [rows[f + ".flac"]["tempo"] for f in "abcd"] == ["right", "octave", "wrong", "missing"]
    assert [rows[f + ".flac"]["key_right"] for f in "abcd"] == [True, False, True, False]
