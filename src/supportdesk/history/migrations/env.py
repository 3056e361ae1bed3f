"""Alembic's environment for the history.

``supportdesk.history.revisions`` runs it on the store's own connection, inside the transaction
that holds the upgrade lock (``config.attributes["connection"]``); there is no alembic.ini.
"""

from __future__ import annotations

from alembic import context

from supportdesk.history.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the history's migrations run from supportdesk (HistoryStore), on its connection")
context.configure(connection=connection, target_metadata=metadata,
                  version_table=config.attributes["version_table"],
                  on_version_apply=config.attributes.get("on_version_apply", ()))
with context.begin_transaction():
    context.run_migrations()
