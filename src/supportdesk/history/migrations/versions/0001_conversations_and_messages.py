"""Schema version 1: conversations and their messages.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", ID, sa.Identity(), primary_key=True),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_table(
        "messages",
        sa.Column("id", ID, sa.Identity(), primary_key=True),
        sa.Column("conversation_id", ID, sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("kind", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("citations", sa.Text, nullable=False, server_default="[]"),
        sa.Column("timings", sa.Text, nullable=False, server_default="{}"),
        sa.CheckConstraint("role IN ('user', 'assistant')"),
    )
    op.create_index("messages_by_conversation", "messages", ["conversation_id", "id"])
