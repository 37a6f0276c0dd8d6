"""The unified view: the schema built from config, identity stitching,
survivorship and the per-request loaders. Knows nothing about SQL or HTTP."""
