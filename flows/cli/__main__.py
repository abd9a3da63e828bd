"""``python -m flows.cli ...``: the same as ``cratedig ...``."""

from flows.cli import main

main()
