"""Schema version 4: copies between stores and writes that land once.

Copies (history migrate): each store has an id, and a copied row keeps "<source store id>:<source
row id>", unique, so a second copy finds what the first made. write_key: a random key per write,
unique, so a write retried after a connection dropped at commit (did it land?) is never stored
twice.

This is the baseline: a database made by supportdesk before the history moved to Alembic, at
version 4 (SQLite's user_version, PostgreSQL's schema_version table), is stamped here.

Revision ID: 0004
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("conversations", "messages"):
        op.add_column(table, sa.Column("origin", sa.Text))
    op.create_index("conversations_by_origin", "conversations", ["origin"], unique=True)
    op.create_index("messages_by_origin", "messages", ["origin"], unique=True)
    for table in ("conversations", "messages"):
        op.add_column(table, sa.Column("write_key", sa.Text))
    op.create_index("conversations_by_write_key", "conversations", ["write_key"], unique=True)
    op.create_index("messages_by_write_key", "messages", ["write_key"], unique=True)
    store_meta = op.create_table(
        "store_meta",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.bulk_insert(store_meta, [{"key": "store_id", "value": uuid.uuid4().hex}])
