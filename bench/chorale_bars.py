"""Write the bar lines of the TRAINING chorales' scores, for ``bench/downbeat_eval.py``.

    python3 bench/chorale_bars.py [ROOT]     # default $CRATEDIG_CORPUS or ~/.cache/cratedig-corpus

Run it with the *system* ``python3``, which has ``music21`` (as ``bench/render_training_chorales.py``). For every
``source`` in ``ROOT/training/training.csv`` and ``ROOT/training/continuo/training.csv`` it writes, to
``ROOT/training/bars.json``, the time signature and the quarter-note offsets of the measures that start a whole
bar (a pickup, and the completion of a bar split by a repeat sign, start none). Works with more than one time
signature are left out. The test chorales' scores are not read.
"""

import csv
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
from music21 import corpus, meter  # noqa: E402


def bars(source: str) -> dict | None:
    """``{"sig": "4/4", "downs": [quarter offsets]}`` of the first part of ``source``, or None."""
    part = corpus.parse(source).parts[0]
    sigs = {t.ratioString for t in part.recurse().getElementsByClass(meter.TimeSignature)}
    if len(sigs) != 1:
        return None
    return {
        "sig": sigs.pop(),
        "downs": [float(m.offset) for m in part.getElementsByClass("Measure") if not m.paddingLeft],
    }


def main() -> None:
    root = (
        sys.argv[1]
        if len(sys.argv) > 1
        else os.environ.get("CRATEDIG_CORPUS", os.path.expanduser("~/.cache/cratedig-corpus"))
    )
    out: dict[str, dict] = {}
    for sub in ("", "continuo"):
        path = os.path.join(root, "training", sub, "training.csv")
        if not os.path.exists(path):
            continue
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if row["source"] not in out:
                    found = bars(row["source"])
                    if found:
                        out[row["source"]] = found
    with open(os.path.join(root, "training", "bars.json"), "w") as fh:
        json.dump(out, fh)
    print(len(out), "works' bar lines written to", os.path.join(root, "training", "bars.json"))


if __name__ == "__main__":
    main()
