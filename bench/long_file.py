"""Long files: a 2-hour DJ mix analysed block by block, with its peak memory.

    .venv/bin/python bench/long_file.py [--hours 2] [--cache DIR]

Builds (once, cached) a mix of synthesized songs at 124 BPM in A minor -- different styles and timbres,
each a whole number of bars so the beat grid runs on across the joins, as in a beat-matched mix -- as a
44.1 kHz stereo 16-bit FLAC, then analyses it in a fresh process (``tasks.features.analyze.analyze_file``, the code a
worker runs) and prints its CPU time, x realtime and peak RSS, with what it found: tempo and key must
describe the whole mix (124.00 BPM, A minor).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.results import recording
from tasks.synth.files import write_long_mix
from tasks.synth.songs import SongSpec, render_song

ROOT = Path(__file__).resolve().parent.parent

MIX_BPM, MIX_TONIC, MIX_MODE = 124.0, 9, "minor"
_CHILD = """
import json, resource, sys, time
from tasks.features.analyze import analyze_file
import os
st = os.stat({path!r})
t = time.process_time()
r = analyze_file({path!r}, st.st_size, st.st_mtime_ns)
cpu = time.process_time() - t
f = r["features"] or {{}}
print(json.dumps({{"status": r["status"], "reason": r["reason"], "detail": r["detail"], "duration_s": r["duration_s"],
                  "cpu_s": cpu, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  **{{k: f.get(k) for k in ("bpm", "bpm_confidence", "key", "key_confidence", "loudness_lufs",
                                           "loudness_range_lu", "true_peak_dbtp", "onset_rate", "danceability")}}}}))
"""


def build_mix(path: Path, hours: float, *, sr: int = 44100) -> Path:
    """Write the benchmark mix to ``path`` unless it is already there (same length)."""
    if path.exists():
        return path
    bar = 4 * 60.0 / MIX_BPM
    kinds = [("house", "saw"), ("house", "pluck"), ("house", "fm"), ("house", "organ")]
    songs = [
        render_song(
            SongSpec(bpm=MIX_BPM, tonic=MIX_TONIC, mode=MIX_MODE, duration_s=32 * bar, style=s, timbre=t, seed=100 + i),
            sr=sr,
        )
        for i, (s, t) in enumerate(kinds)
    ]
    tmp = path.with_suffix(".part.flac")
    write_long_mix(tmp, songs, sr, hours * 3600.0)
    tmp.rename(path)
    return path


def analyse_in_child(path: Path) -> dict:
    """Run ``analyze_file`` on ``path`` in a fresh interpreter; its own peak RSS is the worker's."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(root=str(ROOT), path=str(path))],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ | {"OPENBLAS_NUM_THREADS": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument(
        "--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cratedig-bench"
    )
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    t = time.time()
    path = build_mix(args.cache / f"mix_{args.hours:g}h_{MIX_BPM:g}bpm.flac", args.hours)
    print(f"mix: {path} ({path.stat().st_size / 1e6:.0f} MB, ready in {time.time() - t:.0f} s)")
    r = analyse_in_child(path)
    minutes = (r["duration_s"] or 0.0) / 60.0
    print(f"status {r['status']} {r['reason'] or ''} {r['detail'] or ''}")
    print(
        f"duration {minutes:.1f} min; CPU {r['cpu_s']:.1f} s = {r['cpu_s'] / max(minutes, 1e-9):.3f} s/min "
        f"({60.0 * minutes / max(r['cpu_s'], 1e-9):.0f}x realtime, one core); peak RSS {r['peak_rss_mb']:.0f} MB "
        f"(target <= 600)"
    )
    print(
        f"tempo {r['bpm']} BPM (truth {MIX_BPM:.2f}, confidence {r['bpm_confidence']}); key {r['key']} "
        f"(truth A {MIX_MODE}, confidence {r['key_confidence']}); loudness {r['loudness_lufs']} LUFS, "
        f"LRA {r['loudness_range_lu']} LU, true peak {r['true_peak_dbtp']} dBTP"
    )


if __name__ == "__main__":
    with recording("long_file", "A 2-hour mix"):
        main()
