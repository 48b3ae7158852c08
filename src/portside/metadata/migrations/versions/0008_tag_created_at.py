"""When each tag was created, beside when it last moved, and an index for listing a repository's tags by when
they were published (the management API sorts by it).

`updated_at` now changes only when a tag moves to another manifest; existing tags take it as their creation
time, the best the store knows.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite adds a NOT NULL column only with a constant default; every insert binds its own value.
    op.add_column("tags", sa.Column("created_at", sa.DateTime(), nullable=False, server_default="1970-01-01 00:00:00"))
    op.execute("UPDATE tags SET created_at = updated_at")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("tags", "created_at", server_default=None)
    op.create_index("ix_tags_published", "tags", ["repository_id", "updated_at", "name"])


def downgrade() -> None:
    op.drop_index("ix_tags_published", "tags")
    # No batch mode: rebuilding the table would drop the tag-list triggers of migration 0003.
    op.drop_column("tags", "created_at")
