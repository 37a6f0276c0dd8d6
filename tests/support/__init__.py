"""Helpers shared by the test suites (setup only, never the code under test)."""
