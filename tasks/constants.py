"""Analysis constants, defined once.

Every audio function takes these as keyword defaults (librosa style: ``sr``, ``hop_length``, ``n_fft``).
"""

#: Analysis sample rate in Hz: every file is decoded, down-mixed and resampled to this.
SR: int = 22050
#: STFT frame length in samples (93 ms at ``SR``).
N_FFT: int = 2048
#: STFT hop in samples (23.2 ms at ``SR``; 43.07 frames per second).
HOP_LENGTH: int = 512
#: Mel bands of the shared mel spectrogram.
N_MELS: int = 96
#: MFCC coefficients kept.
N_MFCC: int = 20

#: Bump when any analysis output changes: the next run re-analyses exactly the rows with an older version
#: (what each version changed is in the git log of this line; :data:`RANGE_ONLY_VERSIONS` and
#: :data:`ARHYTHMIC_ONLY_VERSIONS` narrow that).
#: 20: the pitch onsets' pulse no longer needs new notes to be a fifth of the pitch rise, only a tenth (two
#: choirs of the dev set had none; only tracks that were ``ARHYTHMIC`` can change).
#: 19: a pulse short of clear must stand out from unrelated rates, over the whole track or within its sections
#: (notes at random times get a tempo less often).
#: 18: a ``bpm_range`` of an octave or more leaves the octave model's preference as fitted, across BPM_RANGE;
#: the tempo candidates reach past 40-250 when the range does.
#: 17: key: a partial may also be taken up to the mean of partials h-2 and h+2 (a clarinet's odd partials).
#: 16: key: each note's upper partials are attributed to it up to the mean of their neighbouring partials
#: (spectral smoothness). 15: key: a frame that holds one note and its partials (a solo melody) counts as that
#: note alone. 14: the octave model reads the pitch onsets' rise as a sixth envelope (weights refitted). 13: a
#: third witness to the pitch pulse, a rate held through the whole track by the entering notes and the harmonic
#: change. 12: the pitch pulse's new notes must enter (fresh share; 11, a harmonic-change floor raise, was
#: reverted and is skipped so its catalogs re-analyse too). 10: the harmonic change as a second witness to the
#: pitch onsets' pulse. 9: the pitch onsets' pulse for legato music, the pulse gate at the tracked pulse, octave
#: weights fitted on the dev set instead of held-out chorales.
ANALYZER_VERSION: int = 20
#: Version of the similarity embedding (:mod:`tasks.features.embedding`); bump it whenever the embedding's
#: composition, a transform or ``N_MFCC`` changes. Analysed rows with another are re-analysed
#: (:func:`tasks.catalog.scan.plan_scan`): the similarity index holds only the newest version's embeddings.
EMBEDDING_VERSION: int = 1
#: Versions whose change reaches only rows analysed with a ``bpm_range`` other than :data:`BPM_RANGE`: a row
#: made at the default range by the version before one of these is what this version makes, and is not
#: re-analysed for it (:func:`tasks.catalog.scan.plan_scan`).
RANGE_ONLY_VERSIONS: frozenset[int] = frozenset({18})
#: Versions whose change reaches only rows given no tempo as ``ARHYTHMIC``: a row the version before one of these
#: made with a tempo (or with another reason for none) is what this version makes, and is not re-analysed for it.
ARHYTHMIC_ONLY_VERSIONS: frozenset[int] = frozenset({20})

#: Extensions that are treated as audio (lower case, with the dot). Everything else is ignored and counted.
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".wav",
        ".wave",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".m4a",
        ".mp4",
        ".aac",
        ".alac",
        ".aif",
        ".aiff",
        ".wma",
        ".wv",
        ".ape",
    }
)

#: Default preferred tempo range in BPM used for octave (half/double) decisions.
BPM_RANGE: tuple[float, float] = (70.0, 180.0)
#: Tempi the catalog can hold, BPM: estimates and every ``--bpm-range`` lie within these.
BPM_LIMITS: tuple[float, float] = (30.0, 300.0)

#: Shorter files are rejected ``TOO_SHORT``: nothing meaningful can be measured.
MIN_DURATION_S: float = 0.5
#: Longer files are rejected ``TOO_LONG`` (4 hours: longer than any DJ mix worth analysing as one).
MAX_DURATION_S: float = 4 * 3600.0
#: Below this duration tempo is not estimated (``tempo_reason = 'TOO_SHORT'``) and the row is flagged ``SHORT``.
MIN_TEMPO_DURATION_S: float = 6.0
#: Peak level below which a file is flagged ``SILENT`` and gets null tempo/key, dBFS.
SILENCE_DBFS: float = -60.0

#: How long opening the catalog for writing waits for another run that holds it, s.
LOCK_TIMEOUT_S: float = 30.0

#: Analysis worker processes allowed per core (``--workers``, the flows' ``workers``): the analysis is CPU-bound,
#: and each worker may take its memory cap.
MAX_WORKERS_PER_CORE = 4
