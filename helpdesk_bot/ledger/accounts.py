"""Dashboard accounts and the audit log of policy changes made through it."""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from helpdesk_bot.ledger.database import Database
from helpdesk_bot.ledger.tables import admin_users, policy_changes


class AccountStore(Database):
    """`admin_users` and `policy_changes`."""

    def create_user(self, username: str, password: str) -> int:
        username = username.strip()
        if not username:
            raise ValueError("the username must not be empty")
        if len(password) < 10:
            raise ValueError("the password must have at least 10 characters")
        with self.engine.begin() as db:
            try:
                return db.execute(admin_users.insert().values(
                    username=username, password_hash=generate_password_hash(password), created_at=time.time()
                )).inserted_primary_key[0]
            except IntegrityError:
                raise ValueError(f"a user named {username!r} already exists") from None

    def set_password(self, username: str, password: str) -> None:
        if len(password) < 10:
            raise ValueError("the password must have at least 10 characters")
        with self.engine.begin() as db:
            if not db.execute(admin_users.update().where(admin_users.c.username == username)
                              .values(password_hash=generate_password_hash(password))).rowcount:
                raise ValueError(f"no user named {username!r}")

    def check_login(self, username: str, password: str) -> dict | None:
        """The user if the password is right, else None (taking as long either way)."""
        with self.engine.connect() as db:
            row = db.execute(sa.select(admin_users).where(admin_users.c.username == username.strip())).first()
        if row is None:
            check_password_hash(_dummy_hash(), password)  # same cost as a real check
            return None
        if not check_password_hash(row.password_hash, password):
            return None
        with self.engine.begin() as db:
            db.execute(admin_users.update().where(admin_users.c.id == row.id).values(last_login_at=time.time()))
        return {"id": row.id, "username": row.username}

    def user(self, user_id: int) -> dict | None:
        with self.engine.connect() as db:
            row = db.execute(sa.select(admin_users.c.id, admin_users.c.username).where(admin_users.c.id == user_id)).first()
        return dict(row._mapping) if row else None

    def users(self) -> list[dict]:
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(
                sa.select(admin_users.c.id, admin_users.c.username, admin_users.c.created_at,
                          admin_users.c.last_login_at).order_by(admin_users.c.id))]

    def record_policy_change(self, changed_by: str, summary: list[str], before_toml: str, after_toml: str) -> None:
        with self.engine.begin() as db:
            db.execute(policy_changes.insert().values(changed_at=time.time(), changed_by=changed_by,
                                                      summary="\n".join(summary), before_toml=before_toml,
                                                      after_toml=after_toml))

    def policy_changes(self, limit: int = 50) -> list[dict]:
        with self.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(
                sa.select(policy_changes).order_by(policy_changes.c.id.desc()).limit(limit))]


_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate_password_hash("not a password of anyone's"))
    return _DUMMY_HASH[0]
