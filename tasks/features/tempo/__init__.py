"""Tempo, beats and bars: onset envelopes and pitch onsets (:mod:`.envelopes`), the tempogram and pulse tracking
(:mod:`.pulse`), the pitch onsets' pulse for legato music (:mod:`.legato`), the octave model that picks
half/double/third candidates (:mod:`.octave`), the bar grid (:mod:`.beats`) and the estimate (:mod:`.estimate`).
"""
