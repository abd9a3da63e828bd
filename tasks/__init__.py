"""cratedig's work as plain, typed functions that never import Prefect, grouped by domain:
:mod:`.audio`, :mod:`.features`, :mod:`.catalog`, :mod:`.similarity`, :mod:`.synth`; shared constants and errors here.
"""
