"""Track-to-track similarity: mixing rules (:mod:`.rules`), which track a query names (:mod:`.query`), the
embedding index (:mod:`.index`), queries over it (:mod:`.search`), its SQL macros (:mod:`.sql`), DJ sets (:mod:`.mix`).
"""
