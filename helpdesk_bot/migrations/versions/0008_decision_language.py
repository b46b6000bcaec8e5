"""decisions.language: the language the ticket was written in and answered in (ISO 639-1).

The dashboard counts tickets, deflection and knowledge gaps per language. Decisions recorded
before it keep NULL: their language was not known.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("decisions")}
    if "language" in columns:  # created by metadata.create_all after the column existed
        return
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("language", sa.String(8)))
        batch.create_index("ix_decisions_language", ["language"])


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_index("ix_decisions_language")
        batch.drop_column("language")
