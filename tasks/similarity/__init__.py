"""Track-to-track similarity: mixing rules (:mod:`.rules`), which track a query names (:mod:`.query`),
the standardised embedding index (:mod:`.index`), its SQL macros (:mod:`.sql`) and DJ sets (:mod:`.mix`).
"""
