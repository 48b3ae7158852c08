"""Alembic migrations of the metadata schema. `LATEST` names the newest: a store at it needs no upgrade, which
a command can tell with one query, without loading Alembic (tests check it against Alembic's head)."""

LATEST = "0008"
