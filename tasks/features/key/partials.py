"""Upper partials of the notes in a per-frame semitone spectrum: attributed to their note, or removed.

The key's chroma (:mod:`tasks.features.key.estimate`) counts notes, not partials: a note's 3rd partial is the
fifth above it and its 5th the major third, and left in place they vote for other keys.
:func:`attribute_partials` is what the analysis uses; :func:`remove_geometric` is what analyzer versions up to
15 did, kept for the comparison in ``bench/devset_lofo.py``.
"""

from __future__ import annotations

import numpy as np

#: (harmonic number h, semitones above the note) for the partials 2..8 a note is credited with.
HARMONICS = [(h, int(round(12 * np.log2(h)))) for h in range(2, 9)]
#: Rows of partials 1..8 above a note's row: 0, 12, 19, 24, 28, 31, 34, 36.
HARMONIC_ROWS = np.array([0] + [off for _, off in HARMONICS])


def attribute_partials(P: np.ndarray, *, odd: bool = True) -> np.ndarray:
    """Move each note's upper partials (harmonics 2-8) into the note's own row.

    Parameters
    ----------
    P : np.ndarray, shape (12 * n_octaves, n_frames)
        Non-negative semitone spectrum per frame, rows from a C upwards (whole octaves).
    odd : bool
        Also take a partial up to the mean of partials h-2 and h+2 when that is more (see below).

    Returns
    -------
    np.ndarray
        A new array of the same shape: the attributed energy moved into the notes' rows (the total per frame
        is unchanged).

    Notes
    -----
    A partial is taken up to the mean of what the note's neighbouring partials (h-1 and h+1; h-1 for the 8th)
    hold: a harmonic series' amplitudes vary smoothly with h (Klapuri's spectral smoothness, 2003), while a
    second note on a partial's semitone stands out above its neighbours and keeps the excess. With ``odd``, up
    to the larger of that and the mean of partials h-2 and h+2 (h-2 for the 7th and 8th): a clarinet's odd
    partials are strong and its even ones weak, so its 3rd, 5th and 7th stand out above their neighbours
    although they are the note's. Only a note present in the frame takes anything, but however weak: the
    fundamental of an oboe, a bassoon or a low voice is often 10-20 dB under its 2nd-4th partials, so a removal
    scaled by the fundamental's own weight leaves their 3rd partial (the fifth above) and 5th (the major third)
    voting for the dominant. What is taken is added to the note, so a note counts with the energy of its
    partials, not of its fundamental alone.

    Order: lower octaves first, every partial lying at least an octave above its note; within an octave, all
    twelve notes read their partials' amplitudes once, before any is taken, and take them harmonic by harmonic
    (a row can be two notes' partials: G's 2nd is C's 3rd, and G takes it first).
    """
    n_rows, n_frames = P.shape
    if n_rows % 12:
        raise ValueError(f"P must hold whole octaves (rows a multiple of 12), not {n_rows} rows")
    n_h = len(HARMONIC_ROWS)
    P = np.vstack([P, np.zeros((HARMONIC_ROWS[-1], n_frames))])  # partials of the top octave fall here
    for o0 in range(0, n_rows, 12):
        A = np.stack([P[o0 + off : o0 + off + 12] for off in HARMONIC_ROWS])  # (h, note, frame), before moving
        present = A[0] > 0
        for i in range(1, n_h):
            nbr = A[i - 1] if i + 1 == n_h else 0.5 * (A[i - 1] + A[i + 1])
            if odd and i >= 2:
                nbr = np.maximum(nbr, A[i - 2] if i + 2 >= n_h else 0.5 * (A[i - 2] + A[i + 2]))
            dst = P[o0 + HARMONIC_ROWS[i] : o0 + HARMONIC_ROWS[i] + 12]
            take = np.where(present, np.minimum(dst, nbr), 0.0)
            dst -= take
            P[o0 : o0 + 12] += take
    return P[:n_rows]


def remove_geometric(P: np.ndarray, hsub: float) -> np.ndarray:
    """Lower notes first, remove up to ``hsub**(h-1)`` x each note's own weight from its harmonic h (2-8).

    Parameters
    ----------
    P : np.ndarray, shape (12 * n_octaves, n_frames)
        Non-negative semitone spectrum per frame, rows from a C upwards.
    hsub : float
        0..1; 0 removes nothing.

    Returns
    -------
    np.ndarray
        A new array of the same shape, the removed energy gone.
    """
    P = P.copy()
    n_rows = P.shape[0]
    for o0 in range(0, n_rows, 12):
        src = P[o0 : o0 + 12]
        for h, off in HARMONICS:
            if o0 + off >= n_rows:
                break
            dst = P[o0 + off : o0 + off + 12]
            dst -= np.minimum(dst, hsub ** (h - 1) * src[: len(dst)])
    return P
