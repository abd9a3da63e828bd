-- cratedig curation objects (schema version 5): manual corrections, smart and static crates, and the
-- effective view (a correction over the analysis) that exports, crates, similarity and notebooks read.
-- Public contract: see README "The catalog". Applied by tasks.catalog.store.MIGRATIONS[5]; idempotent.
-- Re-analysis never writes these tables (a correction outlives every analyzer_version), but for a file whose
-- audio changed under its path (duration moved > 0.5 s): its corrections are cleared and logged.

-- The current manual correction of a track: NULL columns are not corrected.
CREATE TABLE IF NOT EXISTS corrections (
    track_id       BIGINT PRIMARY KEY,
    bpm            DOUBLE,                -- BPM
    "key"          VARCHAR,               -- e.g. 'A minor' (one of the 24 key names)
    key_camelot    VARCHAR,               -- derived from "key", e.g. '8A'
    key_open       VARCHAR,               -- derived from "key", e.g. '1m'
    beat_offset_s  DOUBLE,                -- time of the first downbeat, s
    beats_per_bar  INTEGER,
    audio_duration_s DOUBLE,              -- s, the duration of the audio it was made for (schema v9; NULL before)
    set_by         VARCHAR NOT NULL,      -- who set the latest value
    set_at         TIMESTAMP NOT NULL     -- when (UTC)
);

-- Append-only history of every correction: who, when, the effective value before and after.
CREATE TABLE IF NOT EXISTS correction_log (
    track_id   BIGINT NOT NULL,
    field      VARCHAR NOT NULL,          -- bpm | key | beat_offset_s | beats_per_bar
    old_value  VARCHAR,                   -- effective value before (correction or analysis), as text
    new_value  VARCHAR,                   -- NULL when the correction was cleared
    set_by     VARCHAR NOT NULL,
    set_at     TIMESTAMP NOT NULL
);

-- Saved crates: 'smart' ones keep a WHERE clause over effective_tracks (re-evaluated at each use),
-- 'static' ones a list of tracks (crate_tracks).
CREATE TABLE IF NOT EXISTS crates (
    name        VARCHAR PRIMARY KEY,
    kind        VARCHAR NOT NULL,         -- smart | static
    where_sql   VARCHAR,                  -- smart: a boolean expression over effective_tracks' columns
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS crate_tracks (
    name      VARCHAR NOT NULL,
    position  INTEGER NOT NULL,           -- 1, 2, ... in the order saved
    track_id  BIGINT NOT NULL,
    PRIMARY KEY (name, position)
);

-- Every analysed track with its effective values: a correction wins over the analysis. The analysed
-- values stay visible as analyzed_*; `corrected` says whether any correction applies.
CREATE OR REPLACE VIEW effective_tracks AS
SELECT t.track_id, t.path, t.title, t.artist, t.album, t.genre, t.format, t.duration_s, t.sample_rate,
       t.channels, t.size_bytes, t.tag_bpm, t.tag_key, t.status,
       f.* EXCLUDE (track_id) REPLACE (
           coalesce(c.bpm, f.bpm) AS bpm,
           coalesce(c."key", f."key") AS "key",
           coalesce(c.key_camelot, f.key_camelot) AS key_camelot,
           coalesce(c.key_open, f.key_open) AS key_open,
           coalesce(c.beat_offset_s, f.beat_offset_s) AS beat_offset_s,
           coalesce(c.beats_per_bar, f.beats_per_bar) AS beats_per_bar),
       f.bpm AS analyzed_bpm, f."key" AS analyzed_key, f.beat_offset_s AS analyzed_beat_offset_s,
       f.beats_per_bar AS analyzed_beats_per_bar, c.track_id IS NOT NULL AS corrected
FROM tracks t JOIN features f USING (track_id) LEFT JOIN corrections c USING (track_id);
