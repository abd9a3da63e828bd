"""``soundfile`` loaded on the system's libsndfile when there is one, else on the copy in the soundfile wheel.

The wheel's copy (libsndfile 1.2.2) decodes FLAC more slowly than Debian's libsndfile 1.2.0 / libFLAC 1.4.2.
On 40 synthesized 44.1 kHz stereo FLACs, the whole analysis took 0.152 s CPU per minute of audio with the
system library and 0.166 with the wheel's (interleaved rounds, per-file minimum). Decoding is ~40 % of the
analysis on FLAC. The two gave identical result rows for every format of the test library (flac, wav, mp3,
ogg, opus, m4a).

``soundfile`` always prefers its own copy. It falls back to the system library only when the package
``_soundfile_data`` cannot be imported, so :func:`_import_soundfile` makes that import fail for the one import.
cratedig's modules take ``sf`` from here rather than importing ``soundfile`` themselves. In a process that
imported ``soundfile`` before any of them, the wheel's copy stays: only decoding is slower.

``make install`` installs Debian's ``libsndfile1`` where it can (root and apt-get). Without it, the wheel's
copy is used.
"""

from __future__ import annotations

import sys
from types import ModuleType


def _import_soundfile() -> ModuleType:
    if "soundfile" not in sys.modules:
        saved = sys.modules.get("_soundfile_data")
        sys.modules["_soundfile_data"] = None  # type: ignore[assignment]  # its import now raises ImportError
        try:
            import soundfile  # noqa: F401  (searches for the system library itself: ctypes.util.find_library)
        except OSError:  # none, or it would not load; the failed import left no module: the wheel's copy below
            pass
        finally:
            if saved is None:
                sys.modules.pop("_soundfile_data", None)
            else:
                sys.modules["_soundfile_data"] = saved
    import soundfile

    return soundfile


#: The ``soundfile`` module; ``sf.__libsndfile_version__`` tells which library it runs on.
sf = _import_soundfile()
