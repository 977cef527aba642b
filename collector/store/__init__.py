"""The collector's durable store: node registry, raw samples and rollups, on SQLite by default.

Shape (STYLE 27): pure policy (``policy``, ``durability``, ``codec``, ``assemble``),
a thin engine holding all the SQL (``sqlite_engine``, ``sqlite_reader``, ``sqlite_schema``),
one writer thread (``writer``). docs/store.md has the design and the wiring plan.
"""
