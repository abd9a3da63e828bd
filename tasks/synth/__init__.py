"""Music with known answers, for tests, benchmarks and the demo: songs (:mod:`.songs`) from voices and drums
(:mod:`.voices`), written to real formats with tags (:mod:`.files`), and the demo library (:mod:`.demo`).
"""
