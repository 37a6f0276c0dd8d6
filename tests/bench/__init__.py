"""``make bench``: custview's latency next to a hand-written SQL floor (see run.py)."""
