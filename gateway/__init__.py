"""The HTTP edge and the command line: settings loading, the Starlette app,
the ``custview`` command and the demo data generator."""
