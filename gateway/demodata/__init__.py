"""The demo sources: three seeded, noisy SQLite systems and their ground truth."""
