"""Prefect flows and the ``cratedig`` command line: thin wiring of :mod:`tasks`."""

from flows.settings import configure_prefect_env

configure_prefect_env()
