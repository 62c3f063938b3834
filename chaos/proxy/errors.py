"""The error a Toxiproxy API request ends in: a message and the HTTP status it is answered with."""

from __future__ import annotations

__all__ = ["ApiError", "bad_body", "missing_field"]


class ApiError(Exception):
    """A request the API refuses; answered as ``{"error": message, "status": status}``."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def to_dict(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}

    def at_proxy(self, number: int) -> ApiError:
        """The same error located in a /populate request (proxies numbered from 1)."""
        return ApiError(f"{self.message} at proxy {number}", self.status)


def bad_body(detail: str) -> ApiError:
    return ApiError(f"bad request body: {detail}", 400)


def missing_field(name: str) -> ApiError:
    return ApiError(f"missing required field: {name}", 400)


PROXY_NOT_FOUND = ApiError("proxy not found", 404)
PROXY_EXISTS = ApiError("proxy already exists", 409)
INVALID_STREAM = ApiError("stream was invalid, can be either upstream or downstream", 400)
INVALID_TOXIC_TYPE = ApiError("invalid toxic type", 400)
TOXIC_EXISTS = ApiError("toxic already exists", 409)
TOXIC_NOT_FOUND = ApiError("toxic not found", 404)

__all__ += ["PROXY_NOT_FOUND", "PROXY_EXISTS", "INVALID_STREAM", "INVALID_TOXIC_TYPE",
            "TOXIC_EXISTS", "TOXIC_NOT_FOUND"]
