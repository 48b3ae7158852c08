"""Upload sessions record whether bytes may have been stored in them.

The flag is set before the first byte is stored, so a session without it is known to be empty: a whole small
blob sent with the PUT that ends a session is then stored directly, with no question to the storage backend
(a round trip to a thread for a file system, a request for an object store). Sessions that exist when this
migration runs are marked, since nothing recorded whether they are empty.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("uploads", sa.Column("has_data", sa.Boolean(), nullable=False, server_default=sa.false()))
    uploads = sa.table("uploads", sa.column("has_data", sa.Boolean()))
    op.execute(uploads.update().values(has_data=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("has_data")
