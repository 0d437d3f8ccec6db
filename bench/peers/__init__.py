"""Drivers for the ways users relabel snapshots today. They run in bench/.venv (the peer SDKs are
not snaprelabel's dependencies) and print one JSON line: {"jobs", "ok", "elapsed_s"}."""
