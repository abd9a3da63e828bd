"""Musical key: tuned chroma from the shared spectrum and profile matching (:mod:`.estimate`), key names and
their Camelot / Open Key notations (:mod:`.names`).
"""
