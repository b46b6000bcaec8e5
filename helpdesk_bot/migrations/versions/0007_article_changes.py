"""Article changes and the answers they touch: indexed_chunks, article_changes, chunk_changes,
cited_chunks (decision → cited chunk) and answer_impacts.

Answers recorded before this revision get their citations from `decisions.sources` (the
sources with a citation number), without the hash of the text they quoted: the first change
to such a chunk touches them.

Revision ID: 0007
Revises: 0006
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "indexed_chunks",
        sa.Column("chunk_id", sa.String(500), primary_key=True),
        sa.Column("article_id", sa.String(500), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False, server_default=""),
        sa.Column("text_hash", sa.String(32), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("indexed_at", sa.Float, nullable=False),
    )
    op.create_index("ix_indexed_chunks_article", "indexed_chunks", ["article_id"])
    op.create_table(
        "article_changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("article_id", sa.String(500), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False, server_default=""),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("changed_at", sa.Float, nullable=False),
        sa.Column("checked_at", sa.Float),
    )
    op.create_index("ix_article_changes_checked_at", "article_changes", ["checked_at"])
    op.create_table(
        "chunk_changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("article_change_id", sa.Integer, sa.ForeignKey("article_changes.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("chunk_id", sa.String(500), nullable=False),
        sa.Column("old_hash", sa.String(32), nullable=False),
        sa.Column("new_hash", sa.String(32)),
        sa.Column("old_text", sa.Text, nullable=False),
        sa.Column("new_text", sa.Text),
    )
    op.create_index("ix_chunk_changes_change", "chunk_changes", ["article_change_id"])
    op.create_index("ix_chunk_changes_old_hash", "chunk_changes", ["old_hash"])
    op.create_table(
        "cited_chunks",
        sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), primary_key=True),
        sa.Column("chunk_id", sa.String(500), primary_key=True),
        sa.Column("text_hash", sa.String(32)),
        sa.Column("cited_at", sa.Float, nullable=False),
    )
    op.create_index("ix_cited_chunks_chunk", "cited_chunks", ["chunk_id", "cited_at"])
    op.create_table(
        "answer_impacts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("article_change_id", sa.Integer, sa.ForeignKey("article_changes.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("event_id", sa.Integer, sa.ForeignKey("ticket_events.id"), nullable=False),
        sa.Column("decision_id", sa.Integer, nullable=False),
        sa.Column("helpdesk", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("answer", sa.String(8), nullable=False),
        sa.Column("answered_at", sa.Float, nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("sentences", sa.Text, nullable=False),
        sa.Column("passages", sa.Text, nullable=False),
        sa.Column("ticket_status", sa.String(32)),
        sa.Column("note", sa.String(16), nullable=False),
        sa.Column("note_error", sa.Text),
        sa.Column("checked_at", sa.Float, nullable=False),
        sa.UniqueConstraint("article_change_id", "event_id", name="uq_answer_impact"),
    )
    op.create_index("ix_answer_impacts_checked_at", "answer_impacts", ["checked_at"])
    _cite_earlier_answers()


def _cite_earlier_answers() -> None:
    """Citations of the answers already said (a reply, or a note with a draft), from their sources."""
    db = op.get_bind()
    cited_chunks = sa.table("cited_chunks", sa.column("event_id"), sa.column("chunk_id"), sa.column("cited_at"))
    last = 0
    while True:  # a page at a time: a ledger may hold millions of decisions
        page = db.execute(sa.text(
            "SELECT event_id, sources, created_at FROM decisions WHERE action IN ('auto_send', 'escalate') "
            "AND event_id > :last ORDER BY event_id LIMIT 5000"), {"last": last}).all()
        if not page:
            return
        rows = []
        for event_id, sources, created_at in page:
            try:
                cited = {s["id"] for s in json.loads(sources or "[]") if s.get("cited")}
            except (ValueError, TypeError, AttributeError, KeyError):
                cited = set()  # a malformed row of an old release: nothing to cite
            rows.extend({"event_id": event_id, "chunk_id": chunk_id, "cited_at": created_at} for chunk_id in cited)
        if rows:
            op.bulk_insert(cited_chunks, rows)
        last = page[-1][0]


def downgrade() -> None:
    for table in ("answer_impacts", "cited_chunks", "chunk_changes", "article_changes", "indexed_chunks"):
        op.drop_table(table)
