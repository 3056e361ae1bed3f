"""Schema version 6: approved answers (issue 28).

Curated answers served before the model, the questions each answers (imported, proposed, or a
wording an agent accepted it for), and agents' proposals waiting for a trainer.

Revision ID: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "approved_answers",
        sa.Column("id", ID, sa.Identity(), primary_key=True),
        sa.Column("key", sa.Text),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("sources", sa.Text, nullable=False, server_default="[]"),
        sa.Column("created_by", sa.Text),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("approved_by", sa.Text),
        sa.Column("approved_at", TIME),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("hits", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_hit", TIME),
        sa.Column("origin", sa.Text),
    )
    op.create_index("approved_answers_by_key", "approved_answers", ["key"], unique=True)
    op.create_index("approved_answers_by_origin", "approved_answers", ["origin"], unique=True)
    op.create_table(
        "approved_questions",
        sa.Column("id", ID, sa.Identity(), primary_key=True),
        sa.Column("answer_id", ID, sa.ForeignKey("approved_answers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text),
        sa.Column("created_at", TIME, nullable=False),
        sa.CheckConstraint("origin IN ('import', 'proposal', 'suggestion-accepted')"),
    )
    op.create_index("approved_questions_by_answer", "approved_questions", ["answer_id", "question"], unique=True)
    op.create_table(
        "proposals",
        sa.Column("id", ID, sa.Identity(), primary_key=True),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("draft", sa.Text, nullable=False, server_default=""),
        sa.Column("proposed", sa.Text, nullable=False),
        sa.Column("sources", sa.Text, nullable=False, server_default="[]"),
        sa.Column("message_id", ID),
        sa.Column("proposed_by", sa.Text),
        sa.Column("proposed_at", TIME, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("reviewed_by", sa.Text),
        sa.Column("reviewed_at", TIME),
        sa.Column("answer_id", ID),
        sa.Column("origin", sa.Text),
        sa.CheckConstraint("status IN ('pending', 'accepted', 'rejected')"),
    )
    op.create_index("proposals_by_status", "proposals", ["status", "id"])
    op.create_index("proposals_by_origin", "proposals", ["origin"], unique=True)
