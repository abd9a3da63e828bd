"""The demo library can show a mix: from any song, a greedy mix by the mixing rules lasts at least 8 tracks."""

from __future__ import annotations

from tasks.features.key.names import camelot
from tasks.similarity.rules import camelot_compatible, tempo_compatible
from tasks.synth.demo import demo_specs


def test_every_demo_song_has_enough_compatible_songs_for_a_mix_of_eight():
    # A greedy mix stops only when every compatible song of the current one is played; with at least 8
    # compatible songs each, it plays at least 9 whatever the similarity order (if tempo and key are estimated
    # right: `cratedig demo` shows how often they are).
    specs = demo_specs()
    for i, a in enumerate(specs):
        compatible = [
            j
            for j, b in enumerate(specs)
            if j != i and tempo_compatible(a.bpm, b.bpm, 6.0) and camelot_compatible(camelot(a.key), camelot(b.key))
        ]
        assert len(compatible) >= 8, (i, a.bpm, a.key, compatible)
