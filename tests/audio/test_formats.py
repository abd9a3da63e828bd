"""Format names users know, from the extension and the decoded codec."""

from __future__ import annotations

import pytest

from tasks.audio.formats import codec_name, format_name


@pytest.mark.parametrize(
    ("path", "codec", "expected"),
    [
        ("a.wav", "pcm_pcm_16", "wav"),
        ("a.WAV", "pcm_s24le", "wav"),
        ("a.aiff", "aiff", "aiff"),
        ("a.aif", "pcm_s16be", "aiff"),
        ("a.flac", "flac", "flac"),
        ("a.mp3", "mp3", "mp3"),
        ("a.mp3", "mp3float", "mp3"),
        ("a.ogg", "vorbis", "ogg"),
        ("a.opus", "opus", "opus"),
        ("a.m4a", "aac", "m4a/aac"),
        ("a.m4a", "alac", "m4a/alac"),
        ("a.aac", "aac", "aac"),
        ("a.wma", "wmav2", "wma"),
        ("a.xyz", None, None),
    ],
)
def test_format_name(path, codec, expected):
    assert format_name(path, codec) == expected


def test_codec_name_drops_libsndfiles_double_prefix():
    assert codec_name("pcm_pcm_16") == "pcm_16" and codec_name("AAC") == "aac" and codec_name(None) is None
