"""Schema version 5: team-server replicas that agree on one knowledge-base generation.

kb_generations: each generation a replica built, whole (FAISS index and chunks), so the others
adopt it without embedding; cluster_state: the current generation, the active adapter, the
cluster's id; cluster_replicas: each replica's heartbeat and what it serves.

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TIME = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "kb_generations",
        sa.Column("generation", sa.Text, primary_key=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("built_by", sa.Text),
        sa.Column("replica", sa.Text),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("vectors", sa.LargeBinary, nullable=False),
        sa.Column("texts", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "cluster_state",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("updated_by", sa.Text),
    )
    op.create_table(
        "cluster_replicas",
        sa.Column("replica", sa.Text, primary_key=True),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("heartbeat_at", TIME, nullable=False),
        sa.Column("generation", sa.Text),
        sa.Column("adapter", sa.Text),
        sa.Column("embedded", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("note", sa.Text),
    )
