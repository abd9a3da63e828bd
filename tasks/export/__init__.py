"""Hand the catalog to DJ software: rekordbox XML (:mod:`.rekordbox`) and Traktor NML (:mod:`.traktor`), both
built from ``effective_tracks`` (corrections over analysis) and the crates (:mod:`.selection`), written atomically.
"""
