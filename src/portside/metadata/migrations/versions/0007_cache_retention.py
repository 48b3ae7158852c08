"""How long a pull-through cache keeps what it fetched: a link or a manifest is kept until `keep_until`, which
each pull moves forward (the proxy's `ttl`), whatever garbage collection's review delay.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repository_blobs") as batch:
        batch.add_column(sa.Column("keep_until", sa.DateTime(), nullable=True))
    with op.batch_alter_table("manifests") as batch:
        batch.add_column(sa.Column("keep_until", sa.DateTime(), nullable=True))
    op.create_index("ix_manifests_keep_until", "manifests", ["keep_until"])


def downgrade() -> None:
    op.drop_index("ix_manifests_keep_until", "manifests")
    with op.batch_alter_table("manifests") as batch:
        batch.drop_column("keep_until")
    with op.batch_alter_table("repository_blobs") as batch:
        batch.drop_column("keep_until")
