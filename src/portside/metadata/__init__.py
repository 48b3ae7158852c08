"""The metadata store: schema, migrations and the queries Portside runs (SQLite by default)."""
