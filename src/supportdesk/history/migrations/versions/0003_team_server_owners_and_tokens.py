"""Schema version 3: the team server (supportdesk serve).

Who owns a conversation, which agent asked, and the role tokens (only their SHA-256 is stored;
the token itself is printed once).

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    op.add_column("conversations", sa.Column("owner", sa.Text))
    op.add_column("messages", sa.Column("asked_by", sa.Text))
    op.create_index("conversations_by_owner", "conversations", ["owner", "updated_at"])
    op.create_table(
        "tokens",
        sa.Column("id", ID, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("token_hash", sa.Text, nullable=False, unique=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME),
        sa.Column("revoked_at", TIME),
        sa.Column("last_used_at", TIME),
        sa.CheckConstraint("role IN ('agent', 'trainer', 'admin')"),
    )
    op.create_index("tokens_active_name", "tokens", ["name"], unique=True,
                    sqlite_where=sa.text("revoked_at IS NULL"), postgresql_where=sa.text("revoked_at IS NULL"))
