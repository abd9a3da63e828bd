"""Both decoders give the same samples: libsndfile and FFmpeg read the files each is first for identically."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.audio.decode import _PYAV_BLOCK, backends_for, open_native
from tasks.errors import RejectError
from tasks.features.analyze import analyze_file
from tasks.synth.files import write_audio
from tasks.vocabulary import Reason

SR = 44100


def _stereo(seconds: float = 4.0) -> np.ndarray:
    # Two different chirps: a swapped or mixed channel shows, and a lag has one answer (a tone's repeats).
    # Quiet enough that no codec clips.
    t = np.arange(int(seconds * SR)) / SR
    return np.stack(
        [0.3 * np.sin(2 * np.pi * (200.0 + 100.0 * t) * t), 0.2 * np.sin(2 * np.pi * (3000.0 - 250.0 * t) * t)]
    ).astype(np.float32)


def _decode(path, backend: str) -> tuple[np.ndarray, list[int]]:
    with open_native(path, backend) as stream:
        blocks = list(stream.blocks)
    assert all(b.dtype == np.float32 and b.shape[0] == 2 for b in blocks)
    return np.concatenate(blocks, axis=1), [b.shape[1] for b in blocks]


@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_lossless_files_decode_to_the_written_samples_with_either_backend(tmp_path, ext):
    x = _stereo()
    path = write_audio(tmp_path / f"a{ext}", x, SR)
    expected = np.round(x * 32767.0) / 32768.0  # written as 16-bit PCM
    for backend in ("soundfile", "pyav"):
        y, _ = _decode(path, backend)
        assert y.shape == x.shape
        np.testing.assert_allclose(y, expected, atol=1.5 / 32768.0, err_msg=backend)


@pytest.mark.parametrize("ext", [".ogg", ".opus"])
def test_ffmpeg_reads_ogg_and_opus_as_libsndfile_does(tmp_path, ext):
    # FFmpeg is first for these (it decodes them faster); its samples must be libsndfile's.
    path = write_audio(tmp_path / f"a{ext}", _stereo(), SR)
    assert backends_for(path)[0] == "pyav"
    ours, sizes = _decode(path, "pyav")
    theirs, _ = _decode(path, "soundfile")
    n = min(ours.shape[1], theirs.shape[1])
    assert abs(ours.shape[1] - theirs.shape[1]) <= 0.001 * n
    # Over a whole second the chirp's pitch moves far enough that only the true lag matches (the next best
    # reaches 0.88 of it). Over 2048 samples a lag of one period (124 samples) matched as well as lag 0, and on
    # one machine 0.06 % better: the decoders' samples differing by 4e-4 decided.
    lag = int(np.argmax(np.correlate(ours[0, SR - 512 : 2 * SR + 512], theirs[0, SR : 2 * SR]))) - 512
    assert lag == 0  # no decoder delay between them
    assert np.abs(ours[:, :n] - theirs[:, :n]).max() < (1e-5 if ext == ".ogg" else 2e-2)
    assert max(sizes) <= _PYAV_BLOCK and len(sizes) >= 2  # gathered from small frames into whole blocks


def test_ffmpeg_decodes_m4a_to_the_signal(tmp_path):
    x = _stereo()
    path = write_audio(tmp_path / "a.m4a", x, SR)
    y, _ = _decode(path, "pyav")
    assert abs(y.shape[1] - x.shape[1]) < 0.05 * x.shape[1]
    mid = slice(SR, 3 * SR)  # away from the encoder's priming and padding
    lag = int(np.argmax(np.correlate(y[0, SR - 2048 : SR + 4096], x[0, SR : SR + 2048]))) - 2048
    np.testing.assert_allclose(
        np.sqrt(np.mean(y[:, mid] ** 2, axis=1)), np.sqrt(np.mean(x[:, mid] ** 2, axis=1)), rtol=0.05
    )
    assert np.corrcoef(y[1, SR + lag : 3 * SR + lag], x[1, mid])[0, 1] > 0.99


def test_a_raw_adts_stream_is_not_taken_for_a_truncated_file(tmp_path):
    # ADTS has no header with a length: FFmpeg estimates one from the first frames' bitrate, which music that
    # gets busier later overshoots. Quiet then loud: the estimate was 10 % long, and the file was rejected.
    from tasks.synth.songs import SongSpec, render_song

    y = np.clip(render_song(SongSpec(bpm=122, tonic=5, duration_s=10, seed=44), sr=SR), -1, 1)
    path = write_audio(tmp_path / "raw.aac", y, SR)
    row = analyze_file(str(path), path.stat().st_size, path.stat().st_mtime_ns)
    assert (row["status"], row["reason"]) == ("analyzed", None), row["detail"]
    assert row["format"] == "aac" and row["duration_s"] == pytest.approx(10.0, abs=0.1)


def test_a_raw_adts_stream_damaged_in_the_middle_is_a_decode_error_not_other_data(tmp_path):
    # With no length to compare, FFmpeg's "invalid data" part way through was read as a file that is no audio.
    path = write_audio(tmp_path / "damaged.aac", _stereo(8.0), SR)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 390] = bytes(390)
    path.write_bytes(bytes(data))
    row = analyze_file(str(path), path.stat().st_size, path.stat().st_mtime_ns)
    assert (row["status"], row["reason"]) == ("rejected", "DECODE_ERROR"), row["detail"]


@pytest.mark.parametrize("backend", ["soundfile", "pyav"])
def test_a_cut_off_flac_is_truncated_whichever_decoder_fails_on_it(tmp_path, backend):
    # FFmpeg stops on the cut last packet with "invalid data": after samples were decoded, short of the
    # header's length, that is a truncated file, not a file that is not audio.
    path = write_audio(tmp_path / "a.flac", _stereo(6.0), SR)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(RejectError) as verdict:
        with open_native(path, backend) as stream:
            for _ in stream.blocks:
                pass
    expected = {"pyav": Reason.TRUNCATED, "soundfile": Reason.DECODE_ERROR}[backend]  # libsndfile fails at once
    assert verdict.value.reason is expected
    st = path.stat()
    row = analyze_file(str(path), st.st_size, st.st_mtime_ns)
    assert (row["status"], row["reason"]) == ("rejected", "TRUNCATED")


def test_a_cut_off_wav_is_truncated_and_a_streamed_one_is_not(tmp_path):
    # Both decoders report only the samples a WAV holds; its header says how many it should hold.
    cut = write_audio(tmp_path / "cut.wav", _stereo(6.0), SR)
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    streamed = write_audio(tmp_path / "streamed.wav", _stereo(6.0), SR)
    raw = bytearray(streamed.read_bytes())
    at = raw.index(b"data") + 4
    raw[at : at + 4] = b"\xff\xff\xff\xff"  # a streaming writer's "length unknown"
    streamed.write_bytes(bytes(raw))
    rows = {p.name: analyze_file(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in (cut, streamed)}
    assert (rows["cut.wav"]["status"], rows["cut.wav"]["reason"]) == ("rejected", "TRUNCATED")
    assert rows["streamed.wav"]["status"] == "analyzed"
    assert abs(rows["streamed.wav"]["duration_s"] - 6.0) < 0.01


def test_the_system_libsndfile_is_used_when_there_is_one():
    """``tasks.audio.sndfile`` loads ``soundfile`` on the system libsndfile (its libFLAC decodes faster) when one is
    installed, else on the wheel's copy. A fresh interpreter: this one may have imported ``soundfile`` first."""
    import ctypes
    import ctypes.util
    import subprocess
    import sys

    def version_in_fresh_python(code: str) -> str:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    used = version_in_fresh_python("from tasks.audio.sndfile import sf; print(sf.__libsndfile_version__)")
    name = ctypes.util.find_library("sndfile")
    if name is None:
        expected = version_in_fresh_python("import soundfile; print(soundfile.__libsndfile_version__)")
    else:
        lib = ctypes.CDLL(name)
        lib.sf_version_string.restype = ctypes.c_char_p
        expected = lib.sf_version_string().decode().removeprefix("libsndfile-")
    assert used == expected


def test_native_blocks_are_bounded_in_bytes_whatever_the_channel_count():
    from tasks.audio.decode import STREAM_BLOCK, STREAM_BLOCK_BYTES, block_frames

    assert block_frames(1) == block_frames(2) == block_frames(8) == STREAM_BLOCK  # usual files: blocks unchanged
    for channels in (9, 32, 1024):
        assert block_frames(channels) * channels * 4 <= STREAM_BLOCK_BYTES
