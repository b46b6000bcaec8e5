"""Common questions as the topics job left them, and the question embeddings it reuses."""

from __future__ import annotations

import json

import sqlalchemy as sa

from helpdesk_bot.ledger.database import Database
from helpdesk_bot.ledger.tables import question_vectors, topic_members, topics


class TopicStore(Database):
    """`topics`, `topic_members` and `question_vectors`."""

    def question_vectors(self, model: str, event_ids: list[int]) -> dict[int, bytes]:
        """The stored embeddings of these events' questions by `model`, as raw float32 bytes."""
        with self.engine.connect() as db:
            return {row.event_id: row.vector for row in db.execute(
                sa.select(question_vectors).where(question_vectors.c.model == model,
                                                  question_vectors.c.event_id.in_(event_ids)))}

    def save_question_vectors(self, model: str, vectors: dict[int, bytes]) -> None:
        """Keep these questions' embeddings by `model`, replacing any an earlier model made."""
        if not vectors:
            return
        with self.engine.begin() as db:
            db.execute(question_vectors.delete().where(question_vectors.c.event_id.in_(list(vectors))))
            db.execute(question_vectors.insert(), [
                {"event_id": event_id, "model": model, "vector": vector} for event_id, vector in vectors.items()])

    def replace_topics(self, found: list[tuple[str, list[str], list[tuple[int, float]]]], computed_at: float) -> None:
        """Store a fresh set of topics in place of the last: (label, keywords, [(event id,
        similarity to the topic's centre)]) for each."""
        with self.engine.begin() as db:
            db.execute(topic_members.delete())
            db.execute(topics.delete())
            for label, keywords, members in found:
                topic_id = db.execute(topics.insert().values(label=label, keywords=json.dumps(keywords),
                                                             size=len(members), computed_at=computed_at)
                                      ).inserted_primary_key[0]
                db.execute(topic_members.insert(), [
                    {"event_id": event_id, "topic_id": topic_id, "similarity": float(similarity)}
                    for event_id, similarity in members])

    def stored_topics(self) -> list[dict]:
        """The topics of the last run: id, label, keywords and `members`, the event ids closest first."""
        with self.engine.connect() as db:
            found = {row.id: {"id": row.id, "label": row.label, "keywords": json.loads(row.keywords), "members": []}
                     for row in db.execute(sa.select(topics).order_by(topics.c.id))}
            for member in db.execute(sa.select(topic_members).order_by(topic_members.c.similarity.desc())):
                if member.topic_id in found:
                    found[member.topic_id]["members"].append(member.event_id)
        return list(found.values())

    def topics_computed_at(self) -> float | None:
        with self.engine.connect() as db:
            return db.execute(sa.select(sa.func.max(topics.c.computed_at))).scalar()
