-- cratedig catalog tables (schema version 1; later versions add objects in tasks.catalog.store.MIGRATIONS).
-- Public contract: see README "The catalog".
-- Applied by tasks.catalog.store.open_catalog; every statement is idempotent.
-- Codes (statuses, reasons, events, flags) are the enums of tasks/vocabulary.py. The pandera models of
-- schemas/tables.py check them before every write; there are no CHECK constraints on purpose: DuckDB cannot
-- alter or drop one, so a catalog created today would refuse a code that a later version adds.

CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER NOT NULL,
    applied_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE SEQUENCE IF NOT EXISTS track_id_seq START 1;
CREATE SEQUENCE IF NOT EXISTS event_id_seq START 1;

-- One row per file ever seen. A moved file keeps its track_id (same fingerprint, new path).
CREATE TABLE IF NOT EXISTS tracks (
    track_id     BIGINT PRIMARY KEY,
    path         VARCHAR NOT NULL,          -- absolute path as text: in a name with a backslash or bytes that are not UTF-8, backslashes doubled and those bytes \xNN (tasks.audio.identity)
    size_bytes   BIGINT NOT NULL,
    mtime_ns     BIGINT NOT NULL,
    fingerprint  VARCHAR NOT NULL,          -- size + hash of sampled blocks (tasks.catalog.scan.fingerprint)
    format       VARCHAR,                   -- wav | aiff | flac | mp3 | ogg | opus | wma | m4a/aac | m4a/alac ...
    codec        VARCHAR,                   -- the decoder's codec name: pcm_16, vorbis, aac, alac, flac ...
    duration_s   DOUBLE,
    sample_rate  INTEGER,                   -- native rate in Hz
    channels     INTEGER,
    title        VARCHAR,
    artist       VARCHAR,
    album        VARCHAR,
    genre        VARCHAR,
    tag_bpm      DOUBLE,
    tag_key      VARCHAR,
    status       VARCHAR NOT NULL,          -- analyzed | rejected | failed | missing
    reason       VARCHAR,                   -- reason code when rejected/failed
    first_seen   TIMESTAMP NOT NULL,
    last_seen    TIMESTAMP NOT NULL
);

-- The current analysis of each track (one row per track; analyzer_version says which analysis).
CREATE TABLE IF NOT EXISTS features (
    track_id              BIGINT PRIMARY KEY,
    analyzer_version      INTEGER NOT NULL,
    bpm                   DOUBLE,            -- BPM, 0.01 resolution; NULL when arhythmic/silent
    bpm_confidence        DOUBLE,            -- 0..1
    bpm_candidates        STRUCT(bpm DOUBLE, score DOUBLE)[],
    beat_offset_s         DOUBLE,            -- time of the first downbeat, s (tasks/features/tempo/beats.py)
    beats_per_bar         INTEGER,           -- 3 or 4; NULL without a tempo or under 8 beats
    tempo_reason          VARCHAR,           -- why bpm is NULL (SILENT, ARHYTHMIC, TOO_SHORT)
    bpm_range_lo          DOUBLE,            -- preferred tempo range of the octave choice, BPM (--bpm-range)
    bpm_range_hi          DOUBLE,
    "key"                 VARCHAR,           -- e.g. 'A minor', 'F# major'
    key_camelot           VARCHAR,           -- e.g. '8A'
    key_open              VARCHAR,           -- Open Key notation, e.g. '1m'
    key_confidence        DOUBLE,            -- 0..1
    tuning_cents          DOUBLE,            -- deviation of the reference from A440, cents
    loudness_lufs         DOUBLE,            -- EBU R128 integrated loudness, LUFS
    loudness_range_lu     DOUBLE,            -- EBU Tech 3342 LRA, LU
    true_peak_dbtp        DOUBLE,            -- 4x oversampled peak, dBTP
    replaygain_db         DOUBLE,            -- gain to -18 LUFS, dB
    mfcc_mean             FLOAT[],           -- 20 values
    mfcc_std              FLOAT[],           -- 20 values
    chroma_mean           FLOAT[],           -- 12 values, C..B, sum 1
    spectral_contrast     FLOAT[],           -- 7 values, dB
    spectral_centroid_hz  DOUBLE,
    spectral_bandwidth_hz DOUBLE,
    spectral_rolloff_hz   DOUBLE,            -- 85% roll-off
    spectral_flatness     DOUBLE,            -- 0..1
    zero_crossing_rate    DOUBLE,            -- crossings per sample
    rms                   DOUBLE,            -- mean frame RMS, linear full scale
    onset_rate            DOUBLE,            -- onsets per second
    pulse_clarity         DOUBLE,            -- 0..1, strength of the beat periodicity
    danceability          DOUBLE,            -- 0..1
    flags                 VARCHAR[],         -- e.g. SILENT, NON_FINITE, SHORT
    embedding             FLOAT[],           -- similarity embedding (tasks.features.embedding)
    embedding_version     INTEGER,
    analyzed_at           TIMESTAMP NOT NULL,
    analysis_ms           DOUBLE
);

-- The latest reason each path could not be analysed (cleared when it later analyses).
CREATE TABLE IF NOT EXISTS rejects (
    path     VARCHAR PRIMARY KEY,
    reason   VARCHAR NOT NULL,
    detail   VARCHAR,
    run_id   VARCHAR,
    seen_at  TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    run_id        VARCHAR PRIMARY KEY,
    flow_run_id   VARCHAR,
    library       VARCHAR NOT NULL,
    started_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP,
    analyzer_version INTEGER,
    n_files       BIGINT DEFAULT 0,
    n_new         BIGINT DEFAULT 0,
    n_changed     BIGINT DEFAULT 0,
    n_unchanged   BIGINT DEFAULT 0,
    n_moved       BIGINT DEFAULT 0,
    n_missing     BIGINT DEFAULT 0,
    n_ignored     BIGINT DEFAULT 0,
    n_analyzed    BIGINT DEFAULT 0,
    n_rejected    BIGINT DEFAULT 0,
    n_failed      BIGINT DEFAULT 0,
    status        VARCHAR NOT NULL           -- running | completed | failed | interrupted
    -- (schema v7 adds: error VARCHAR, why a failed run failed, one line)
);

-- Append-only history: added / changed / moved / missing / analyzed / rejected / failed.
CREATE TABLE IF NOT EXISTS track_events (
    event_id  BIGINT PRIMARY KEY DEFAULT nextval('event_id_seq'),
    track_id  BIGINT,
    path      VARCHAR NOT NULL,
    event     VARCHAR NOT NULL,
    detail    VARCHAR,
    run_id    VARCHAR,
    event_at  TIMESTAMP NOT NULL
);
