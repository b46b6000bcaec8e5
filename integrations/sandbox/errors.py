"""Zendesk-shaped API errors."""

from __future__ import annotations


class ApiError(Exception):
    """An error answer: Zendesk bodies are {"error": ..., "description": ..., "details": ...}."""

    def __init__(self, status: int, error: str, description: str | None = None,
                 details: dict | None = None, headers: dict | None = None):
        super().__init__(f"{status} {error}: {description or ''}")
        self.status = status
        self.error = error
        self.description = description
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict:
        body = {"error": self.error}
        if self.description is not None:
            body["description"] = self.description
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found() -> ApiError:
    return ApiError(404, "RecordNotFound", "Not found")


def record_invalid(field: str, message: str, code: str = "InvalidValue", status: int = 422) -> ApiError:
    return ApiError(status, "RecordInvalid", "Record validation errors",
                    details={field: [{"description": message, "error": code}]})


def bad_request(error: str, description: str) -> ApiError:
    return ApiError(400, error, description)
