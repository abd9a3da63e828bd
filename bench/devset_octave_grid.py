"""Whether the octave model's fit settings hold it back: the L2 penalty and the weight of the synthesized sets,
chosen by nested leave-one-family-out.

    python -m bench.devset_octave_grid [DEVSET] [--jobs 2]

:mod:`bench.devset_octave` fits the octave model with the settings used up to analyzer version 9 (``FIT_LAMBDA``,
every synthesized item weighing as much as a dev file), kept rather than tuned. Here each setting of a grid is
scored as ``devset_octave`` scores its '+songs' variant: each family held out in turn, the model fitted on the
others and on the synthesized sets (the synth family's fold keeps the songs of its own generator). A setting
picked by that pooled score has seen every family, so the honest figure is the nested one: for each held-out
family, the setting is chosen by the same leave-one-family-out on the other families alone, then fitted on them
and scored on the held-out family. Scores: Acc1 at the default range and at 40-250, each chosen for on its own.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from bench.corpus import corpus_root
from bench.devset_octave import DRUM_WEIGHT, FIT_LAMBDA, WIDE, Evidence, choose, dev_and_synthetic, fit_octave_weights
from bench.results import recording
from bench.tempo_eval import score as tempo_score
from tasks.constants import ANALYZER_VERSION, BPM_RANGE

#: The L2 penalties and the weights of a synthesized item (a drum loop's times ``DRUM_WEIGHT``) tried.
LAMBDAS = (0.3, 1.0, 3.0, 10.0, 30.0)
SYNTHETIC_WEIGHTS = (0.0, 0.25, 0.5, 1.0)
GRID = tuple(itertools.product(LAMBDAS, SYNTHETIC_WEIGHTS))
RANGES = ((BPM_RANGE, "default"), (WIDE, "40-250"))


class Folds:
    """Fits and held-out hits on the dev set and the synthesized sets, by family and setting (cached)."""

    def __init__(
        self,
        dev: list[Evidence],
        refs: np.ndarray,
        fam: np.ndarray,
        synthetic: dict[str, tuple[list[Evidence], np.ndarray]],
    ) -> None:
        self.dev, self.refs, self.fam = dev, refs, fam
        self.families = sorted(set(fam))
        # As devset_octave fits: on the evidence at the default range.
        self.synthetic = [
            (ev[BPM_RANGE], float(ref), DRUM_WEIGHT if name == "drum loops" else 1.0)
            for name, (evs, rs) in synthetic.items()
            for ev, ref in zip(evs, rs)
        ]
        self._hits: dict[tuple[frozenset[str], str, tuple[float, float]], dict[tuple, np.ndarray]] = {}

    def hits(self, train: frozenset[str], test: str, setting: tuple[float, float]) -> dict[tuple, np.ndarray]:
        """Acc1 hits of family ``test`` per range, the model fitted on families ``train`` with ``setting``."""
        key = (train, test, setting)
        if key not in self._hits:
            lam, synthetic_weight = setting
            data, weights = [], []
            for ev, ref, w in self.synthetic:
                if ev is not None:
                    ratios, feats, pulse_bpm = ev
                    data.append((ratios * pulse_bpm, feats, ref))
                    weights.append(w * synthetic_weight)
            for ev, ref, f in zip(self.dev, self.refs, self.fam):
                if f in train and ev[BPM_RANGE] is not None:
                    ratios, feats, pulse_bpm = ev[BPM_RANGE]
                    data.append((ratios * pulse_bpm, feats, float(ref)))
                    weights.append(1.0)
            w = fit_octave_weights(data, lam=lam, sample_weight=weights)
            m = self.fam == test
            self._hits[key] = {
                rng: np.array(
                    [tempo_score(choose(ev[rng], w, rng), r)[0] for ev, r, t in zip(self.dev, self.refs, m) if t]
                )
                for rng, _ in RANGES
            }
        return self._hits[key]

    def lofo(self, families: list[str], setting: tuple[float, float], rng: tuple[float, float]) -> int:
        """Files right when each of ``families`` is held out from the others in turn."""
        return sum(int(self.hits(frozenset(families) - {f}, f, setting)[rng].sum()) for f in families)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("devset", type=Path, nargs="?", default=corpus_root() / "devset")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    folds = Folds(*dev_and_synthetic(args.devset, args.jobs))
    families, n = folds.families, len(folds.refs)
    shipped = (FIT_LAMBDA, 1.0)
    with recording("devset_octave_grid", "Development set: the octave fit's settings, nested LOFO (tempo Acc1)"):
        print(f"{n} dev files; analyzer version {ANALYZER_VERSION}; files right, held out family by family")
        print("setting (L2 penalty, weight of a synthesized item): default range | 40-250")
        for setting in GRID:
            cells = [folds.lofo(families, setting, rng) for rng, _ in RANGES]
            mark = "  (devset_octave's setting)" if setting == shipped else ""
            print(f"  lambda {setting[0]:5g}, synthetic {setting[1]:4g}: {cells[0]:4d} | {cells[1]:4d}{mark}")
        for rng, lab in RANGES:
            print(f"\nnested, {lab} range: the setting chosen on the other families' LOFO, then scored held out")
            nested, fixed = 0, 0
            for f in families:
                others = [g for g in families if g != f]
                best = max(GRID, key=lambda s: (folds.lofo(others, s, rng), s == shipped))
                got = int(folds.hits(frozenset(others), f, best)[rng].sum())
                base = int(folds.hits(frozenset(others), f, shipped)[rng].sum())
                nested, fixed = nested + got, fixed + base
                print(f"  {f:12s} chose lambda {best[0]:5g}, synthetic {best[1]:4g}: {got:3d} (fixed: {base:3d})")
            print(f"  pooled       {nested / n:.3f} ({nested}) against the fixed setting's {fixed / n:.3f} ({fixed})")


if __name__ == "__main__":
    main()
