"""OpenAI-shaped error responses: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import json

from starlette.responses import Response

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class GatewayError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": _TYPES.get(self.status, "api_error"),
                          "param": self.param, "code": self.code}}

    def response(self, headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(self.body()), status_code=self.status, media_type="application/json",
                        headers=headers)

    def sse_event(self) -> bytes:
        """The error as a chat or completions stream's last event (OpenAI's clients raise it)."""
        return f"data: {json.dumps(self.body())}\n\n".encode()

    def responses_sse_event(self, sequence_number: int) -> bytes:
        """The error as a Responses API stream's `error` event (type, code, message, param, sequence_number),
        with the chat shape's `error` object beside them, which OpenAI's clients raise as they do a chat
        stream's."""
        body = self.body()
        event = {"type": "error", "code": self.code, "message": self.message, "param": self.param,
                 "sequence_number": sequence_number, **body}
        return f"event: error\ndata: {json.dumps(event)}\n\n".encode()
