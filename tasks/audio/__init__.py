"""Reading audio files: sniffing and validation, decoding (libsndfile, PyAV) and resampling, tags,
and how a file is identified (storable path text, content fingerprint).
"""
