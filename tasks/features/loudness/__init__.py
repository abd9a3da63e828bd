"""Loudness per EBU R128 / ITU-R BS.1770: integrated loudness, range and ReplayGain (:mod:`.r128`), its streaming
meter for long files (:mod:`.stream`) and the oversampled true peak (:mod:`.true_peak`).
"""
