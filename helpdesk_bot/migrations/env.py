"""Alembic environment: run by `Ledger.migrate()` with the ledger's own connection."""

from alembic import context

from helpdesk_bot.ledger import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
