"""File checks before decoding: sizes, magic bytes (including property-based tests of the sniffer)."""

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.audio.validate import check_file, check_size, describe_non_audio, sniff_format
from tasks.errors import RejectError
from tasks.vocabulary import Reason


@pytest.mark.parametrize(
    "ext,fmt,subtype,expected",
    [
        ("wav", "WAV", "PCM_16", "wav"),
        ("flac", "FLAC", "PCM_16", "flac"),
        ("ogg", "OGG", "VORBIS", "ogg"),
        ("opus", "OGG", "OPUS", "ogg"),
        ("mp3", "MP3", "MPEG_LAYER_III", "mp3"),
        ("aiff", "AIFF", "PCM_16", "aiff"),
    ],
)
def test_real_files_are_sniffed(tmp_path, ext, fmt, subtype, expected):
    sr = 48000 if subtype == "OPUS" else 44100
    y = 0.3 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
    p = tmp_path / f"x.{ext}"
    sf.write(p, y, sr, format=fmt, subtype=subtype)
    assert check_file(p, p.stat().st_size) == expected


@pytest.mark.parametrize(
    "content,what",
    [
        (b"<!DOCTYPE html><html><body>404</body></html>" * 50, "HTML page"),
        (b"\x7fELF\x02\x01\x01" + bytes(2000), "ELF executable"),
        (b"\x89PNG\r\n\x1a\n" + bytes(2000), "PNG image"),
    ],
)
def test_not_audio_is_named(tmp_path, content, what):
    p = tmp_path / "song.mp3"
    p.write_bytes(content)
    with pytest.raises(RejectError) as err:
        check_file(p, p.stat().st_size)
    assert err.value.reason is Reason.NOT_AUDIO
    assert err.value.detail == what


def test_sizes():
    with pytest.raises(RejectError) as err:
        check_size(0)
    assert err.value.reason is Reason.EMPTY
    with pytest.raises(RejectError) as err:
        check_size(11, max_bytes=10)
    assert err.value.reason is Reason.TOO_LARGE
    check_size(10, max_bytes=10)


def test_unreadable(tmp_path):
    with pytest.raises(RejectError) as err:
        check_file(tmp_path / "gone.flac", 100)
    assert err.value.reason is Reason.UNREADABLE


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=4096))
def test_sniffer_never_raises_and_random_bytes_are_rarely_audio(data):
    kind = sniff_format(data)
    assert kind is None or isinstance(kind, str)
    assert isinstance(describe_non_audio(data), str)


def test_random_bytes_are_not_audio():
    rng = np.random.default_rng(0)
    hits = sum(sniff_format(rng.bytes(65536)) is not None for _ in range(300))
    assert hits == 0


@given(st.integers(min_value=-10, max_value=10**12), st.integers(min_value=1, max_value=10**12))
def test_check_size_property(size, limit):
    if size <= 0 or size > limit:
        with pytest.raises(RejectError):
            check_size(size, max_bytes=limit)
    else:
        check_size(size, max_bytes=limit)


def test_check_format_refuses_absurd_rates_and_channel_counts():
    from tasks.audio.validate import check_format
    from tasks.errors import RejectError

    for rate, channels in ((44100, 2), (8000, 1), (4000, 32), (768000, 1)):
        check_format(rate, channels)
    for rate, channels in ((1, 1), (3999, 2), (768001, 2), (44100, 33), (44100, 1024), (44100, 0)):
        with pytest.raises(RejectError, match="UNSUPPORTED_FORMAT"):
            check_format(rate, channels)
