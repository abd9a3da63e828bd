"""Crates: smart clauses checked when saved (one line, nothing stored), evaluated on the effective values at
each use; static crates keep their order."""

from __future__ import annotations

import pytest

from tasks.catalog.corrections import Correction, set_correction
from tasks.catalog.crates import (
    CrateError,
    crate_tracks,
    list_crates,
    remove_crate,
    save_smart_crate,
    save_static_crate,
)
from tasks.catalog.runs import catalog_counts
from tasks.catalog.store import open_catalog


def test_smart_crate_follows_corrections(catalog_copy):
    con = open_catalog(catalog_copy)
    save_smart_crate(con, "peak time", "bpm BETWEEN 122 AND 128 AND key_camelot IN ('8A', '9A')")
    before = set(crate_tracks(con, "peak time")["track_id"])
    assert before == {1, 2}  # 124 BPM A minor (8A), 126 BPM E minor (9A)
    set_correction(con, 1, Correction(bpm=140.0), by="dj")  # out of the range now
    set_correction(con, 3, Correction(key="Am"), by="dj")  # 128 BPM, C major analysed: in now
    assert set(crate_tracks(con, "peak time")["track_id"]) == {2, 3}
    assert catalog_counts(con)["crates"] == 1
    con.close()


@pytest.mark.parametrize(
    "clause, why",
    [
        ("bpm > 120; DROP TABLE tracks", "';'"),
        ("1=1); DROP TABLE tracks; (1=1", "parentheses|';'"),
        ("true) UNION ALL SELECT 1 FROM tracks WHERE (true", "parentheses"),
        ("bpm > 120 -- and the rest", "comments"),
        ("bpm > 120 /* hidden */", "comments"),
        ("bpm", "not a condition"),
        ("no_such_column = 1", "bad clause"),
        ("bpm >", "bad clause"),
        ("title = 'unterminated", "bad clause"),
        ("nextval('track_id_seq') > 0", "changes the catalog"),
        # quoted or qualified, the call is the same function (a crate is evaluated at every use)
        ("\"setval\"('track_id_seq', 1) > 0", "changes the catalog"),
        ("\"NextVal\"('track_id_seq') > 0", "changes the catalog"),
        ("main.nextval('track_id_seq') > 0", "changes the catalog"),
        ('"sleep_ms"(100000) IS NULL', "waits"),  # crate list and show would hang on it
        # Non-ASCII text shifted the check's pieces (the tokenizer counts bytes): a ')' taken for part of a literal
        # closed the wrapping parenthesis, and a UNION read any file into a "track".
        (
            "'ſſſſſſ' = 'ſſſſſſſſſſſ') UNION ALL BY NAME SELECT content AS title, 'ſſſſſſſſſſſ' || filename AS path "
            "FROM read_text('/etc/passwd') UNION ALL BY NAME SELECT ('' IS NOT NULL",
            "parentheses|not one condition",
        ),
        ("'' = 'ſſſſſſ') OR ('' IS NOT NULL", "parentheses|not one condition"),
        ("   ", "empty"),
    ],
)
def test_bad_clause_is_one_line_and_not_stored(catalog_copy, clause, why):
    con = open_catalog(catalog_copy)
    sequences = "SELECT sequence_name, last_value FROM duckdb_sequences() ORDER BY 1"
    before = con.execute(sequences).fetchall()
    with pytest.raises(CrateError, match=why) as info:
        save_smart_crate(con, "bad", clause)
    assert "\n" not in str(info.value)
    assert con.execute("SELECT count(*) FROM crates").fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM tracks").fetchall() == [(5,)]
    assert con.execute(sequences).fetchall() == before
    con.close()


def test_literals_may_hold_anything(catalog_copy):
    con = open_catalog(catalog_copy)
    save_smart_crate(con, "odd", "title = 'it''s ); -- not code' OR \"key\" = 'A minor'")
    assert set(crate_tracks(con, "odd")["track_id"]) == {1}
    save_smart_crate(con, "names", "artist IN ('Björk', 'Mø') OR (\"key\" = 'A minor')")  # refused as unbalanced
    assert set(crate_tracks(con, "names")["track_id"]) == {1}
    con.close()


def test_a_clause_calls_this_cratedigs_rules_not_a_catalogs_older_ones(catalog_copy):
    # A catalog keeps the macros of the cratedig that last wrote it; one that read 'Am' as no key gave an empty crate.
    con = open_catalog(catalog_copy)
    save_smart_crate(con, "with am", "cratedig_camelot_compatible(key_camelot, 'Am')")
    expected = set(crate_tracks(con, "with am")["track_id"])
    assert expected
    con.execute("CREATE OR REPLACE MACRO cratedig_camelot_code(c) AS 24")  # as an older cratedig's read 'Am'
    con.close()
    con = open_catalog(catalog_copy, read_only=True)
    assert set(crate_tracks(con, "with am")["track_id"]) == expected
    con.close()


def test_static_crate_order_names_and_removal(catalog_copy):
    con = open_catalog(catalog_copy)
    assert save_static_crate(con, "set 1", [3, 1, 2]) == 3
    assert crate_tracks(con, "set 1")["track_id"].to_list() == [3, 1, 2]
    with pytest.raises(CrateError, match="exists"):
        save_static_crate(con, "set 1", [1])
    save_static_crate(con, "set 1", [2], replace=True)
    assert crate_tracks(con, "set 1")["track_id"].to_list() == [2]
    with pytest.raises(CrateError, match="name"):
        save_static_crate(con, "\x1b[31m", [1])
    listed = list_crates(con)
    assert listed.select("name", "kind", "tracks").rows() == [("set 1", "static", 1)]
    remove_crate(con, "set 1")
    with pytest.raises(CrateError, match="no crate"):
        crate_tracks(con, "set 1")
    con.close()


def test_ddl_documents_the_curation_codes():
    import re
    from importlib import resources

    from tasks.vocabulary import CorrectedField, CrateKind

    sql = resources.files("schemas").joinpath("curation.sql").read_text()

    def documented(column: str) -> set[str]:
        return {v.strip() for v in re.search(column + r"[^\n]*--\s*([a-z_ |]+)\n", sql).group(1).split("|")}

    assert documented(r"kind\s+VARCHAR NOT NULL,") == set(CrateKind)
    assert documented(r"field\s+VARCHAR NOT NULL,") == set(CorrectedField)
