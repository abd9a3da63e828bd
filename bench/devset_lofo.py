"""Leave-one-family-out choice of the key estimator's settings on the development set.

    python -m bench.devset_lofo [DEVSET] [--jobs 2]

For every file with a key, the key peaks are computed once (the analysis path: ``decode_audio``, the shared
STFT, :func:`tasks.features.key.estimate.key_peaks`) and every variant of the settings (profile x harmonic
removal ``hsub`` x first/last emphasis ``edge`` x that emphasis at both ends or at the start only x the
bass's weight ``bass_weight`` and floor ``bass_floor``, written ``bass=weight@floor``) is scored from them.
Each family in turn is held out: the variant with the best MIREX score on the other families is chosen and
scored on the held-out family. A change ships only when the pooled held-out score is above the previous
version's, held out alike, and no family loses more than one file's worth (MIREX points summed over the
family).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
from dataclasses import replace
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from bench.corpus import corpus_root
from bench.results import recording
from tasks.audio.decode import decode_audio
from tasks.features.key import estimate
from tasks.features.key.estimate import PROFILES, _Params, key_from_peaks, key_peaks
from tasks.features.key.names import mirex_score
from tasks.features.spectrum import compute_spectrum

#: Candidate profiles beyond the shipped ones: the diatonic profile's minor scored with the natural 7th
#: above the leading tone, or both alike (its own minor favours the leading tone, so natural-minor music,
#: which has none, reads as the relative major).
CANDIDATES = {
    "diatonic-nat": (PROFILES["diatonic"][0], (2.0, 0.0, 1.0, 1.5, 0.0, 1.0, 0.0, 1.5, 1.0, 0.0, 1.0, 0.5)),
    "diatonic-mixed": (PROFILES["diatonic"][0], (2.0, 0.0, 1.0, 1.5, 0.0, 1.0, 0.0, 1.5, 1.0, 0.0, 0.75, 0.75)),
}
for _k, _v in CANDIDATES.items():
    PROFILES.setdefault(_k, _v)
DEFAULT = (_Params(), False)  # the shipped settings: the opening emphasised, not the end
#: What analyzer version 10 shipped: the same without the bass; the ship rule compares with it.
VERSION_10 = (replace(_Params(), bass_weight=0.0), False)
#: What analyzer version 7 shipped.
VERSION_7 = (replace(_Params(), profile="bgate", hsub=0.4, edge=2.0, bass_weight=0.0), True)
#: (settings, whether the last frames are emphasised like the first): a minor piece may end on a major chord.
VARIANTS = [
    (replace(DEFAULT[0], profile=prof, hsub=h, edge=e, bass_weight=b, bass_floor=bf), ends)
    for prof, h, e, ends, b, bf in itertools.product(
        sorted(PROFILES), (0.0, 0.4, 0.6), (0.0, 2.0, 5.0), (True, False), (0.0, 0.1, 0.2, 0.3), (0.1, 0.25)
    )
    if (e > 0 or ends) and (b > 0 or bf == DEFAULT[0].bass_floor)
]
_END = [True]


def _frame_weights(n_tonal: int, p: _Params) -> np.ndarray:
    """:func:`tasks.features.key.estimate._frame_weights`, with the end's emphasis switched by ``_END``."""
    fw = np.ones(n_tonal)
    n = max(1, int(p.edge_frac * n_tonal))
    fw[:n] += p.edge
    fw[-n:] += p.edge if _END[0] else 0.0
    return fw


def _name(v: tuple[_Params, bool]) -> str:
    p, ends = v
    bass = f"/bass={p.bass_weight:g}" + (f"@{p.bass_floor:g}" if p.bass_weight > 0 else "")
    return f"{p.profile}/hsub={p.hsub:g}/edge={p.edge:g}{bass}{'' if ends else ' start only'}"


def keys_of_file(path: str) -> list[str | None]:
    """The key every variant gives ``path``."""
    audio = decode_audio(path)
    peaks = key_peaks(compute_spectrum(audio.y), p=DEFAULT[0])
    estimate._frame_weights = _frame_weights  # the bench's copy, whose end emphasis can be switched off
    out = []
    for p, ends in VARIANTS:
        _END[0] = ends
        out.append(key_from_peaks([peaks], p).key)
    return out


def _held_out(fam: np.ndarray, scores: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Each file's score under the variant chosen (best summed MIREX among ``allowed``) on the other families,
    and that variant per family."""
    v10 = VARIANTS.index(VERSION_10)
    held, chosen = np.zeros(len(fam)), {}
    for f in sorted(set(fam)):
        train, test = fam != f, fam == f
        on_others = scores[train].sum(axis=0) + 1e-9 * (np.arange(len(VARIANTS)) == v10)
        chosen[f] = int(np.argmax(np.where(allowed, on_others, -np.inf)))
        held[test] = scores[test, chosen[f]]
    return held, chosen


def lofo(rows: list[dict], scores: np.ndarray, allowed: np.ndarray) -> None:
    """Print, for each family held out, the variant chosen on the others and its held-out score; the same
    protocol with the choices version 10 had (no bass), which the ship rule compares with; and, in-sample, the
    shipped settings, version 10's and version 7's."""
    default, v10, v7 = (VARIANTS.index(v) for v in (DEFAULT, VERSION_10, VERSION_7))
    fam = np.array([r["family"] for r in rows])
    held, chosen = _held_out(fam, scores, allowed)
    before, _ = _held_out(fam, scores, allowed & np.array([v[0].bass_weight == 0.0 for v in VARIANTS]))
    ok = True
    print(
        f"{'held out':13s} {'n':>4s} {'chosen on the other families':56s} {'held-out':>8s} {'no bass':>8s} "
        f"{'shipped':>8s} {'version 10':>10s} {'version 7':>9s}"
    )
    for f in sorted(chosen):
        test = fam == f
        loss = before[test].sum() - held[test].sum()
        ok &= loss <= 1.0
        print(
            f"{f:13s} {test.sum():4d} {_name(VARIANTS[chosen[f]]):56s} {held[test].mean():8.3f} "
            f"{before[test].mean():8.3f} {scores[test, default].mean():8.3f} {scores[test, v10].mean():10.3f} "
            f"{scores[test, v7].mean():9.3f}{'  <- loses more than one file' if loss > 1.0 else ''}"
        )
    print(
        f"{'pooled':13s} {len(rows):4d} {'':56s} {held.mean():8.3f} {before.mean():8.3f} "
        f"{scores[:, default].mean():8.3f} {scores[:, v10].mean():10.3f} {scores[:, v7].mean():9.3f}\n"
        f"'held-out': chosen among all variants; 'no bass': among version 10's (bass weight 0), held out alike; "
        f"'shipped', 'version 10', 'version 7': those settings on every family (in-sample).\nShip rule, held-out "
        f"against 'no bass' (pooled rises, no family loses more than one file): "
        f"{'met' if held.mean() > before.mean() and ok else 'not met'}"
    )
    for prof in sorted({v[0].profile for v in VARIANTS}):  # the best of each profile tried
        i = max((i for i, v in enumerate(VARIANTS) if v[0].profile == prof), key=lambda i: scores[:, i].mean())
        print(f"  best {prof:14s}: {_name(VARIANTS[i]):44s} {scores[:, i].mean():.3f}")
    top = np.argsort(-scores.mean(axis=0))[:5]
    print(
        "best variants on all families (MIREX): "
        + "; ".join(f"{_name(VARIANTS[i])} {scores[:, i].mean():.3f}" for i in top)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("devset", type=Path, nargs="?", default=corpus_root() / "devset")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--profiles", nargs="*", default=sorted(PROFILES), help="profiles the choice may take")
    args = ap.parse_args()
    with open(args.devset / "ground_truth.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["key"]]
    cache = args.devset / "results" / "key_variants.json"  # the keys of every variant, by file
    known = json.loads(cache.read_text()) if cache.exists() else {}
    if known.get("variants") != [_name(v) for v in VARIANTS]:
        known = {"variants": [_name(v) for v in VARIANTS], "keys": {}}
    todo = [r["file"] for r in rows if r["file"] not in known["keys"]]
    with Pool(args.jobs) as pool:
        for f, ks in zip(todo, pool.map(keys_of_file, [str(args.devset / f) for f in todo], chunksize=4)):
            known["keys"][f] = ks
    cache.parent.mkdir(exist_ok=True)
    cache.write_text(json.dumps(known))
    keys = [known["keys"][r["file"]] for r in rows]
    scores = np.array([[mirex_score(k, r["key"]) if k else 0.0 for k in ks] for r, ks in zip(rows, keys)])
    with recording("devset_lofo", "Development set: key settings chosen leave-one-family-out"):
        print(f"{len(rows)} files with a key, {len(VARIANTS)} variants; default {_name(DEFAULT)}")
        print(f"profiles the choice may take: {' '.join(args.profiles)}")
        allowed = np.array([v[0].profile in args.profiles for v in VARIANTS])
        lofo(rows, scores, allowed)
        exact = np.array([[1.0 if s == 1.0 else 0.0 for s in row] for row in scores])
        fam = np.array([r["family"] for r in rows])
        _, chosen = _held_out(fam, scores, allowed)
        held_exact = np.concatenate([exact[fam == f, i] for f, i in chosen.items()])
        print(
            f"exact key rate: held out {held_exact.mean():.3f}; shipped "
            f"{exact[:, VARIANTS.index(DEFAULT)].mean():.3f}, version 10 "
            f"{exact[:, VARIANTS.index(VERSION_10)].mean():.3f}, "
            f"version 7 {exact[:, VARIANTS.index(VERSION_7)].mean():.3f}"
        )


if __name__ == "__main__":
    main()
