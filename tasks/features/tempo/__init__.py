"""Tempo, beats and bars: onset envelopes, the tempogram and pulse tracking (:mod:`.estimate`),
the octave model that picks half/double/third candidates (:mod:`.octave`) and the bar grid (:mod:`.beats`).
"""
