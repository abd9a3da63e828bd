"""Similarity rules without a catalog: Camelot and tempo compatibility, the SQL macros that state them again, and
the embedding's group weights."""

from __future__ import annotations

import itertools
import random

import duckdb
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.similarity.index import GROUP_WEIGHTS, dimension_weights, standardise
from tasks.similarity.rules import RULE_MACROS_SQL, camelot_code, camelot_compatible, tempo_compatible


def test_camelot_rules():
    assert camelot_compatible("8A", "8A") and camelot_compatible("8A", "9A") and camelot_compatible("8A", "7A")
    assert camelot_compatible("8A", "8B") and camelot_compatible("12B", "1B") and camelot_compatible("1A", "12A")
    assert not camelot_compatible("8A", "10A") and not camelot_compatible("8A", "9B")
    assert not camelot_compatible("8A", None) and not camelot_compatible("x", "8A")
    assert camelot_compatible("A minor", "C major") and camelot_compatible("A minor", "E minor")
    assert not camelot_compatible("A minor", "F# major")
    # Standard notation (what TKEY and rekordbox hold, what `set --key Fm` takes) and Open Key read too.
    assert camelot_compatible("Am", "8A") and camelot_compatible("1m", "8A") and camelot_compatible("F#m", "11A")
    assert camelot_compatible("C", "Am") and camelot_compatible("Ebm", "2A") and camelot_compatible("12d", "7B")
    assert (
        not camelot_compatible("Am", "F#") and not camelot_compatible("1m", "3A") and not camelot_compatible("H", "8A")
    )


@given(st.integers(1, 12), st.sampled_from("AB"), st.integers(1, 12), st.sampled_from("AB"))
def test_camelot_symmetric_and_counts(na, la, nb, lb):
    a, b = f"{na}{la}", f"{nb}{lb}"
    assert camelot_compatible(a, b) == camelot_compatible(b, a)
    assert sum(camelot_compatible(a, f"{n}{x}") for n in range(1, 13) for x in "AB") == 4


@given(st.floats(40, 250), st.floats(0.5, 15))
def test_tempo_window_half_and_double(bpm, pct):
    # The window is +-pct % of the reference tempo (or its half/double), not of the candidate.
    for r in (1.0, 2.0, 0.5):
        assert tempo_compatible(bpm, bpm * r * (1 + 0.99 * pct / 100), pct)
        assert tempo_compatible(bpm, bpm * r * (1 - 0.99 * pct / 100), pct)
        assert not tempo_compatible(bpm, bpm * r * (1 + 1.01 * pct / 100), pct)
        assert not tempo_compatible(bpm, bpm * r * (1 - 1.01 * pct / 100), pct)
    assert not tempo_compatible(bpm, bpm * 1.5, pct)
    assert not tempo_compatible(None, bpm, pct) and not tempo_compatible(bpm, float("nan"), pct)


def test_group_weights_give_documented_shares():
    groups = {"timbre": slice(0, 20), "rhythm": slice(20, 24), "tonality": slice(24, 36), "loudness": slice(36, 38)}
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((5000, 38)) * rng.uniform(0.01, 100, 38) + rng.uniform(-50, 50, 38)
    w = dimension_weights(groups, 38)
    v = standardise(emb, emb.mean(0), emb.std(0), w).astype(np.float64)
    # Expected squared distance between two random tracks: 2 * sum of variances; each group its share.
    shares = {g: float((v[:, sl] ** 2).sum(axis=1).mean()) for g, sl in groups.items()}
    total = sum(GROUP_WEIGHTS[g] for g in groups)
    for g in groups:
        assert shares[g] == pytest.approx(GROUP_WEIGHTS[g] / total, rel=0.08)
    dead = dimension_weights(groups, 38, live=np.arange(38) != 36)
    assert dead[36] == 0 and dead[37] ** 2 == pytest.approx(GROUP_WEIGHTS["loudness"] / total)


def test_the_sql_rules_agree_with_the_python_rules_on_every_input():
    # Codes out of the wheel (0A, 13A, 08A), key names in every spelling Python reads, NaN tempi: SQL users get
    # the answers the Python rules give.
    con = duckdb.connect()
    con.execute(RULE_MACROS_SQL)
    keys = ["8A", "9a", " 12 B ", "13A", "0A", "08A", "20B", "1A", "1B", "12A", "7B", "x", "", None, "Am"]
    keys += ["A minor", "a MINOR", "Bb min", "C♯ maj", "C## major", "Cb minor", "H minor", "A  minor", "A minor x"]
    # White space as Python reads it (a tag's trailing newline, a no-break space), and short names.
    keys += ["A minor\n", "8A\u00a0", "A\u00a0minor", "\t8 b", "A\u2003minor", "8A\x0b", "\u30008B", "A m", "Bbm"]
    # Standard notation and Open Key in their edge spellings: M is major, a lower-case letter, double accidentals.
    keys += ["AM", "am", "Am ", "A\u00a0m", "bbm", "Bbb", "C#", "c♯min", "E♭maj", "Abminor", "Fx", "G#b", "A mi"]
    keys += ["1m", "1M", "12d", "10D", "13m", "0d", "01m", "1 m", "8d ", "\u30001m", "1mm", "6d"]
    pairs = list(itertools.product(keys, keys))
    # One query for every pair (a query each took 19 s of the suite): the pairs' order is kept by their number.
    got = con.execute(
        "SELECT cratedig_camelot_compatible(p[1], p[2]) FROM unnest(?::VARCHAR[][]) WITH ORDINALITY AS t(p, i) "
        "ORDER BY i",
        [[list(p) for p in pairs]],
    ).fetchall()
    assert len(got) == len(pairs)
    for (a, b), (answer,) in zip(pairs, got):
        assert answer == camelot_compatible(a, b), (a, b)
    # Key names built at random from what tags hold: any white space, mixed accidentals, modes in other scripts.
    rng = random.Random(2)
    spaces = [" ", "\t", "\n", "\xa0", "\u3000", "\x1c", "\u2028", "\u200b", ""]
    accidentals = ["", "#", "b", "♯", "♭", "##", "bb", "♯#", "#♯", "b♭", "♭b", "B", "♯♯", "x", "#b"]
    modes = ["major", "maj", "minor", "min", "MAJOR", "Min", "m", "mİn", "MİNOR", "mınor", "majör", "minor\u0307"]
    for _ in range(3000):
        keys.append(
            rng.choice(spaces)
            + rng.choice("ABCDEFGHabcdefghＡ")
            + rng.choice(accidentals)
            + rng.choice(spaces + [" "])
            + rng.choice(modes)
            + rng.choice(spaces)
        )
        keys.append(rng.choice(spaces) + str(rng.randint(-1, 14)) + rng.choice(spaces) + rng.choice("ABabCÅdDmMn"))
        keys.append(
            rng.choice("ABCDEFGHabcdefgh")
            + rng.choice(accidentals)
            + rng.choice(["", "", " ", "\t"])
            + rng.choice(["", "m", "M", "min", "minor", "maj", "major", "mi", "mn", "Min"])
        )
    codes = con.execute(
        "SELECT cratedig_camelot_code(k) FROM unnest(?::VARCHAR[]) WITH ORDINALITY AS t(k, i) ORDER BY i", [keys]
    ).fetchall()
    for k, (code,) in zip(keys, codes, strict=True):
        assert code == camelot_code(k), k
    nan, inf = float("nan"), float("inf")
    tempi = [(nan, 120.0, 6), (120.0, nan, 6), (inf, 120.0, 6), (120.0, 121.0, 1), (120.0, 240.0, 1)]
    tempi += [(120.0, 121.0, nan), (120.0, 500.0, inf), (0.0, 0.0, inf), (120.0, 120.0, -1), (120.0, 120.0, 0)]
    for a, b, pct in tempi:
        got = con.execute("SELECT cratedig_tempo_compatible(?::DOUBLE, ?::DOUBLE, ?)", [a, b, pct]).fetchone()[0]
        assert got == tempo_compatible(a, b, pct), (a, b, pct)
    # Typed as SQL types them: a literal such as 105.6 is an exact DECIMAL, an integer percentage an INTEGER.
    triples = [(round(rng.uniform(40, 250), 1), round(rng.uniform(40, 250), 1), rng.randint(1, 8)) for _ in range(3000)]
    triples.append((110.0, 105.6, 4))  # at the window's edge: exact decimals said yes, doubles say no
    answers = con.execute(
        "SELECT cratedig_tempo_compatible(t.a::DECIMAL(9, 1), t.b::DECIMAL(9, 1), t.p::INTEGER) "
        "FROM unnest(?::STRUCT(a DOUBLE, b DOUBLE, p INTEGER)[]) WITH ORDINALITY AS u(t, i) ORDER BY i",
        [[{"a": a, "b": b, "p": p} for a, b, p in triples]],
    ).fetchall()
    for (a, b, pct), (answer,) in zip(triples, answers, strict=True):
        assert answer == tempo_compatible(a, b, pct), (a, b, pct)
    con.close()
