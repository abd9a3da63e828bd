"""The analysis of one decoded track: the shared spectrum, tempo, key, loudness, timbre, rhythm and the
similarity embedding, plus :mod:`tasks.features.workers`, the process pool that analyses files in parallel.
"""
