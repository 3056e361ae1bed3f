"""Schema version 2: each message's rating (👍/👎), model figures and whether it abstained.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("feedback", sa.Integer, nullable=False, server_default=sa.text("0")))
    op.add_column("messages", sa.Column("model", sa.Text, nullable=False, server_default="{}"))
    op.add_column("messages", sa.Column("abstained", sa.Integer, nullable=False, server_default=sa.text("0")))
