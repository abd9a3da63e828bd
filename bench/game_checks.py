"""Label-free checks on real game soundtracks: what the analysis says about music with no ground truth.

    python -m bench.game_checks [CORPUS] [--jobs 2] [--peers]      # CORPUS/real/<package>/<track> from ../shared/corpus

The corpus's ``real/`` tracks (Debian's wesnoth-1.16-music, supertux-data, singularity-music,
colobot-common-sounds and warzone2100-music; none is held out by issue 19) have no tempo or key labels, so
only what needs none is measured, per package and pooled:

- ``none``: share given no tempo (``ARHYTHMIC``, ``SILENT``, ``TOO_SHORT``): game scores are mostly
  rhythmic, but ambient cues may rightly have no pulse, so this is a share to watch, not an error rate;
- ``outside``: share of tempi outside the preferred range (a promise: must be 0 with the default range);
- ``40-250 outside``: share the free model (range 40-250) puts outside 70-180: how often the promise decides;
- ``agree``: where the file's tag states a BPM, share within 4 % of it (none of these packages tags BPM
  today; the column stays for corpora that do);
- ``keyless``: share given no key; CPU s per minute of audio for the whole analysis.

With ``--peers`` (the ``bench`` extra), Essentia's RhythmExtractor2013 (multifeature) runs on the same decoded
signal, as a peer with no labels either: its tempo and its confidence (0-5.32; the guidelines its documentation
cites call under 1 very low and over 1.5 good). A second table says, per package, on how many tracks Essentia is
sure, how many of those we give the same tempo (within 4 %), a metrical relative of it (x2, x1/2, x3, x1/3) or
another (or none), and the highest confidence Essentia reaches on a track we give no tempo: a pulse Essentia is
sure of and we miss would show there.

Results per file are kept in ``CORPUS/results/game-vN.jsonl`` (N = ``ANALYZER_VERSION``; Essentia's in
``game-essentia.jsonl``); a rerun analyses only new files. The tables go to ``bench/RESULTS.md`` (section
``game_checks``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from multiprocessing import Pool
from pathlib import Path

from bench.corpus import corpus_root
from bench.results import recording
from bench.tempo_eval import score as tempo_score
from tasks.constants import ANALYZER_VERSION, BPM_RANGE

_WIDE = (40.0, 250.0)
#: Essentia's confidence from which its tempo counts as sure (the guidelines it cites: over 1.5 good).
ESSENTIA_SURE = 1.5


def _analyse(path: str) -> dict:
    from tasks.features.analyze import analyze_file

    st = os.stat(path)
    out: dict = {"file": path}
    for name, rng in (("default", BPM_RANGE), ("wide", _WIDE)):
        t = time.process_time()
        res = analyze_file(path, st.st_size, st.st_mtime_ns, bpm_range=rng)
        feats = res["features"] or {}
        out[name] = {
            "status": res["status"],
            "bpm": feats.get("bpm"),
            "reason": feats.get("tempo_reason"),
            "key": feats.get("key"),
            "cpu": time.process_time() - t,
        }
        out.update(duration_s=res.get("duration_s") or 0.0, tag_bpm=res.get("tag_bpm"))
    return out


def _essentia(path: str) -> dict:
    """Essentia's RhythmExtractor2013 (multifeature) tempo and confidence, on our decoder's mono at 44.1 kHz
    (Essentia's own loader reads no Opus)."""
    import essentia
    import essentia.standard as es

    from tasks.audio.decode import decode_audio

    essentia.log.infoActive = essentia.log.warningActive = False
    y44 = decode_audio(path, sr=44100).y
    t = time.process_time()
    bpm, _, confidence, _, _ = es.RhythmExtractor2013(method="multifeature")(essentia.array(y44))
    return {"file": path, "bpm": float(bpm) or None, "confidence": float(confidence), "cpu": time.process_time() - t}


def _gather(store: Path, tracks: list[str], work, jobs: int) -> dict[str, dict]:
    """Records of ``tracks`` from ``store`` (JSON lines), running ``work`` on those not there yet."""
    store.parent.mkdir(exist_ok=True)
    done = {}
    if store.exists():
        done = {rec["file"]: rec for rec in map(json.loads, store.read_text().splitlines())}
    todo = [t for t in tracks if t not in done]
    if todo:
        with Pool(jobs) as pool, open(store, "a") as fh:
            for rec in pool.imap_unordered(work, todo):
                done[rec["file"]] = rec
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
    return {t: done[t] for t in tracks}


def _by_package(recs: list[dict]) -> list[tuple[str, list[dict]]]:
    """``(package, its records)`` for each package, then ``("pooled", every record)``."""
    packages = sorted({Path(r["file"]).parent.name for r in recs})
    return [(p, [r for r in recs if Path(r["file"]).parent.name == p]) for p in packages] + [("pooled", recs)]


def _per_minute(cpu_s: float, recs: list[dict]) -> float:
    """CPU seconds per minute of the records' audio."""
    return cpu_s / max(sum(r["duration_s"] for r in recs) / 60, 1e-9)


def peer_table(recs: list[dict], peer: dict[str, dict]) -> None:
    """Per package: tracks Essentia is sure of, how many of them we give its tempo or a relative of it, and the
    highest confidence it has on a track we give no tempo."""
    print(f"\nEssentia RhythmExtractor2013 (multifeature) on the same signals; 'sure': confidence >= {ESSENTIA_SURE}")
    print(
        f"{'package':24s} {'n':>4s} {'sure':>5s} {'same':>5s} {'x2,1/2,3,1/3':>12s} {'other':>5s} "
        f"{'ours none: max conf':>19s} {'CPU s/min':>9s}"
    )
    for pkg, sub in _by_package(recs):
        sure = [(r, peer[r["file"]]) for r in sub if peer[r["file"]]["confidence"] >= ESSENTIA_SURE]
        # Essentia's tempo as the reference: Acc1 is the same tempo, Acc2 a metrical relative of it.
        scores = [tempo_score(r["default"]["bpm"], p["bpm"]) for r, p in sure if p["bpm"]]
        same = sum(acc1 for acc1, _, _ in scores)
        relative = sum(acc2 for _, acc2, _ in scores) - same
        missed = [peer[r["file"]]["confidence"] for r in sub if r["default"]["bpm"] is None]
        cpu = _per_minute(sum(peer[r["file"]]["cpu"] for r in sub), sub)
        print(
            f"{pkg:24s} {len(sub):4d} {len(sure):5d} {same:5d} {relative:12d} {len(sure) - same - relative:5d} "
            f"{(f'{max(missed):.2f} of {len(missed)}' if missed else '-'):>19s} {cpu:9.2f}"
        )
    print("('other': another ratio, or no tempo from us; CPU: Essentia's tempo alone, decoding not included)")


def _share(flags: list[bool]) -> str:
    return f"{sum(flags) / len(flags):6.3f}" if flags else "     -"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path, nargs="?", default=corpus_root())
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--peers", action="store_true", help="also run Essentia's tempo (the bench extra) as a peer")
    args = ap.parse_args()
    tracks = sorted(str(p) for p in (args.corpus / "real").glob("*/*") if p.is_file())
    if not tracks:
        raise SystemExit(f"no tracks under {args.corpus / 'real'}: build the corpus (../shared/corpus/build.sh)")
    results = args.corpus / "results"
    recs = list(_gather(results / f"game-v{ANALYZER_VERSION}.jsonl", tracks, _analyse, args.jobs).values())
    peer = _gather(results / "game-essentia.jsonl", tracks, _essentia, args.jobs) if args.peers else None
    lo, hi = BPM_RANGE
    with recording("game_checks", "Game soundtracks: label-free checks"):
        minutes = sum(r["duration_s"] for r in recs) / 60
        print(
            f"{len(recs)} tracks, {minutes:.0f} min of audio, analyzer version {ANALYZER_VERSION}, default range "
            f"{lo:g}-{hi:g} BPM"
        )
        print(
            f"{'package':24s} {'n':>4s} {'none':>6s} {'outside':>7s} {'40-250 outside':>14s} {'tagged':>6s} "
            f"{'agree':>6s} {'keyless':>7s} {'CPU s/min':>9s}"
        )
        for pkg, sub in _by_package(recs):
            ok = [r for r in sub if r["default"]["status"] == "analyzed"]
            bpm = [r["default"]["bpm"] for r in ok if r["default"]["bpm"] is not None]
            wide = [r["wide"]["bpm"] for r in ok if r["wide"]["bpm"] is not None]
            tagged = [r for r in ok if r["tag_bpm"] and r["default"]["bpm"]]
            agree = [tempo_score(r["default"]["bpm"], r["tag_bpm"])[0] for r in tagged]
            cpu = _per_minute(sum(r["default"]["cpu"] for r in sub), sub)
            print(
                f"{pkg:24s} {len(sub):4d} {_share([r['default']['bpm'] is None for r in ok])} "
                f"{_share([not lo <= b <= hi for b in bpm]):>7s} {_share([not lo <= b <= hi for b in wide]):>14s} "
                f"{len(tagged):6d} {_share(agree)} {_share([r['default']['key'] is None for r in ok]):>7s} "
                f"{cpu:9.2f}"
            )
        reasons: dict[str, int] = {}
        for r in recs:
            key = r["default"]["reason"] or ("rejected" if r["default"]["status"] != "analyzed" else None)
            if key:
                reasons[key] = reasons.get(key, 0) + 1
        print("no tempo, by reason:", ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none")
        if peer is not None:
            peer_table(recs, peer)


if __name__ == "__main__":
    main()
