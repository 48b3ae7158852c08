"""A version number per repository's tag list, raised by the database itself whenever a tag appears or goes.

A worker keeps each repository's sorted tag list in memory with the version it read; one indexed lookup of
the version tells whether the list is still current, in any process of any instance. Triggers keep the number
exact whichever statement changes the tags, including the cascade when a manifest is deleted. Moving a tag to
another manifest leaves the list of names, and so the version, unchanged.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SQLITE_TRIGGERS = (
    """CREATE TRIGGER tags_version_insert AFTER INSERT ON tags BEGIN
        UPDATE repositories SET tags_version = tags_version + 1 WHERE id = NEW.repository_id;
    END""",
    """CREATE TRIGGER tags_version_delete AFTER DELETE ON tags BEGIN
        UPDATE repositories SET tags_version = tags_version + 1 WHERE id = OLD.repository_id;
    END""",
)

POSTGRESQL_TRIGGERS = (
    """CREATE FUNCTION portside_tags_version() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE repositories SET tags_version = tags_version + 1 WHERE id = NEW.repository_id;
        ELSE
            UPDATE repositories SET tags_version = tags_version + 1 WHERE id = OLD.repository_id;
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER tags_version AFTER INSERT OR DELETE ON tags
        FOR EACH ROW EXECUTE FUNCTION portside_tags_version()""",
)


def upgrade() -> None:
    op.add_column("repositories", sa.Column("tags_version", sa.BigInteger(), nullable=False, server_default="0"))
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL_TRIGGERS if postgresql else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER tags_version ON tags")
        op.execute("DROP FUNCTION portside_tags_version()")
    else:
        op.execute("DROP TRIGGER tags_version_insert")
        op.execute("DROP TRIGGER tags_version_delete")
    with op.batch_alter_table("repositories") as batch:
        batch.drop_column("tags_version")
