"""The product's exceptions, in three families that decide what happens next.

    HelpdeskBotError
    ├── ConfigError        a setting or the policy file is wrong: fail at start, name it
    ├── BadInput           a request we must refuse (4xx); never retried
    ├── TransientError     the other side may succeed later: retry with backoff
    │   │                  (carries the wait the other side asked for, if any)
    │   ├── Throttled      refused before acting (HTTP 429): certainly nothing happened
    │   ├── AIUnavailable  the vector store or the LLM is down
    │   └── ActionInProgress  another worker holds the ticket's action: wait, not a failure
    └── PermanentError     retrying cannot help: dead-letter and tell a human
"""

from __future__ import annotations


class HelpdeskBotError(Exception):
    pass


class ConfigError(HelpdeskBotError):
    pass


class BadInput(HelpdeskBotError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class TransientError(HelpdeskBotError):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(HelpdeskBotError):
    pass


class Throttled(TransientError):
    pass


class AIUnavailable(TransientError):
    """The vector store or the LLM cannot be reached; after the last try a human takes over."""


class ActionInProgress(TransientError):
    """Another worker claimed this ticket's reply or note and may be posting it right now."""
