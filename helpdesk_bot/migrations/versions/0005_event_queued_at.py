"""ticket_events.queued_at: when a queue message for the event was last published.

The scheduler re-queues a "queued" event whose last message is older than the broker's data
(a Redis restart without persistence) or than HELPDESK_REQUEUE_AFTER. Existing rows keep
NULL, read as their received_at.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("ticket_events")}
    if "queued_at" in columns:  # created by metadata.create_all after the column existed
        return
    with op.batch_alter_table("ticket_events") as batch:
        batch.add_column(sa.Column("queued_at", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("ticket_events") as batch:
        batch.drop_column("queued_at")
