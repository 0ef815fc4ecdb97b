"""What the gateway answers when a request cannot reach a handler: an unknown
service or method, a content type no codec reads, a stream sent as a unary
call, an HTTP method the call does not take, a body over the limit, a browser
origin not allowed.

Each answer is an error in the client's own protocol, with an ErrorInfo reason,
saying what was wrong and what is accepted: a gRPC status for gRPC and gRPC-Web
clients (grpcurl prints it), the end-of-stream error for a Connect stream,
otherwise the Connect JSON error body with the HTTP status the protocol asks
for. Never a bare status."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType

from services.gateway.errors import (
    connect_error_body,
    did_you_mean,
    failure,
    grpc_status_headers,
)
from services.kit.text import shown

Headers = Sequence[tuple[bytes, bytes]]
GRPC_CONTENT_TYPE = "application/grpc"
GRPC_WEB_CONTENT_TYPE = "application/grpc-web"
CONNECT_STREAM_CONTENT_TYPE = "application/connect+"
END_STREAM_FLAG = 0b10


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer the gateway writes itself: the HTTP status Connect clients and
    curl see, the error, and headers the protocol asks for (Allow, Accept-Post)."""

    status: int
    error: ConnectError
    headers: Headers = ()


def is_grpc(content_type: str | None) -> bool:
    """gRPC and gRPC-Web: their clients read a status, not an HTTP error."""
    return (content_type or "").startswith(GRPC_CONTENT_TYPE)


def end_of_stream(error: ConnectError) -> bytes:
    """A Connect stream's last envelope, carrying the error."""
    message = b'{"error": ' + connect_error_body(error) + b"}"
    return bytes([END_STREAM_FLAG]) + len(message).to_bytes(4, "big") + message


async def send_refusal(
    send: Callable, refusal: Refusal, content_type: str | None, *, trailers: bool = False
) -> None:
    """Writes the refusal in the request's protocol. `trailers`: the server can
    send HTTP trailers on this request (HTTP/2 with `te: trailers`)."""
    given = content_type or ""
    trailer_headers = None
    if given.startswith(CONNECT_STREAM_CONTENT_TYPE) and refusal.status != 415:
        # A Connect stream reads its error from the end-of-stream message
        # (a codec it cannot name is an HTTP 415, as for unary calls).
        status, headers = 200, [(b"content-type", given.encode())]
        body = end_of_stream(refusal.error)
    elif not is_grpc(given):
        status, headers = refusal.status, [(b"content-type", b"application/json"), *refusal.headers]
        body = connect_error_body(refusal.error)
    elif trailers and not given.startswith(GRPC_WEB_CONTENT_TYPE):
        # gRPC reads its status from trailers: an empty response, then the
        # status. (A trailers-only answer needs END_STREAM on the headers,
        # which an ASGI app cannot ask of the server.)
        status, headers, body = 200, [(b"content-type", given.encode())], b""
        trailer_headers = grpc_status_headers(refusal.error)
    else:
        # gRPC-Web (and gRPC without trailers) reads a status sent as headers.
        headers = [(b"content-type", given.encode()), *grpc_status_headers(refusal.error)]
        status, body = 200, b""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": headers,
            "trailers": trailer_headers is not None,
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
    if trailer_headers is not None:
        await send(
            {"type": "http.response.trailers", "headers": trailer_headers, "more_trailers": False}
        )


def unknown_service(service: str, method: str, served: Iterable[str]) -> Refusal:
    names = sorted(served)
    what = (
        f"no service {shown(service)} here" if method else f"{shown('/' + service)} is not a call"
    )
    message = f"{what}: calls are /<service>/<method>, and the services are {', '.join(names)}"
    error = failure(Code.UNIMPLEMENTED, "SERVICE_NOT_FOUND", message, {"services": ",".join(names)})
    return Refusal(404, error)


def unknown_method(service: str, method: str, methods: Iterable[str]) -> Refusal:
    names = sorted(methods)
    message = (
        f"{service} has no method {shown(method)} here; "
        f"{did_you_mean(method, names)}its methods: {', '.join(names)}"
    )
    error = failure(Code.UNIMPLEMENTED, "METHOD_NOT_FOUND", message, {"methods": ",".join(names)})
    return Refusal(404, error)


def body_too_large(limit: int) -> Refusal:
    message = f"the request body is larger than the gateway accepts ({limit:,} bytes)"
    error = failure(Code.RESOURCE_EXHAUSTED, "BODY_TOO_LARGE", message, {"max_bytes": str(limit)})
    return Refusal(413, error)


def origin_not_allowed(origin: str | None) -> Refusal:
    message = (
        "this browser origin may not call the gateway (see GATEWAY_CORS_ORIGINS)"
        if origin
        else "a preflight request needs an Origin header"
    )
    return Refusal(403, failure(Code.PERMISSION_DENIED, "ORIGIN_NOT_ALLOWED", message))


def accepted_content_types(method: MethodInfo, codecs: Sequence[str]) -> list[str]:
    """What a call's request may be sent as, in every protocol."""
    stream = method.stream_type is not StreamType.UNARY
    connect = [f"application/connect+{c}" if stream else f"application/{c}" for c in codecs]
    grpc = [GRPC_CONTENT_TYPE, *(f"{GRPC_CONTENT_TYPE}+{c}" for c in codecs)]
    web = [GRPC_WEB_CONTENT_TYPE, *(f"{GRPC_WEB_CONTENT_TYPE}+{c}" for c in codecs)]
    return [*connect, *grpc, *web]


def explain_bare_status(
    status: int, content_type: str | None, method: MethodInfo, codecs: Sequence[str]
) -> Refusal | None:
    """What connectrpc's bare 415 or 405 meant for this call, or None for any other status."""
    call = f"{method.service_name}/{method.name}"
    if status == 415:
        accepted = accepted_content_types(method, codecs)
        given = shown(content_type or "")
        metadata = {"content_type": content_type or "", "accepted": ",".join(accepted)}
        media_type = (content_type or "").partition(";")[0].strip().lower()
        unary_types = {f"application/{codec}" for codec in codecs}
        if method.stream_type is not StreamType.UNARY and media_type in unary_types:
            message = (
                f"{call} is a server stream: send its request as one enveloped message with "
                f"content-type {' or '.join(accepted[: len(codecs)])} (Connect streaming), "
                "or over gRPC or gRPC-Web"
            )
            return Refusal(
                415, failure(Code.INVALID_ARGUMENT, "STREAM_SENT_AS_UNARY", message, metadata)
            )
        message = f"{call} does not take content-type {given}; it takes {', '.join(accepted)}"
        error = failure(Code.INVALID_ARGUMENT, "UNSUPPORTED_CONTENT_TYPE", message, metadata)
        return Refusal(415, error, ((b"accept-post", ", ".join(accepted).encode()),))
    if status == 405:
        allowed = (
            "GET, POST" if method.idempotency_level is IdempotencyLevel.NO_SIDE_EFFECTS else "POST"
        )
        message = f"{call} takes {allowed} only"
        if allowed == "POST":
            message += " (GET is for calls without side effects)"
        error = failure(
            Code.INVALID_ARGUMENT, "HTTP_METHOD_NOT_ALLOWED", message, {"allow": allowed}
        )
        return Refusal(405, error, ((b"allow", allowed.encode()),))
    return None


class BareStatusExplainer:
    """An ASGI send that replaces connectrpc's bare protocol errors (a 415 or
    405 status with an empty body and no content type) with an explained
    Refusal; everything else passes through untouched."""

    def __init__(
        self,
        send: Callable,
        explain: Callable[[int], Refusal | None],
        content_type: str | None,
        *,
        trailers: bool,
    ) -> None:
        self._send = send
        self._explain = explain
        self._content_type = content_type
        self._trailers = trailers
        self._replaced = False

    async def __call__(self, message: Mapping) -> None:
        if self._replaced:
            return  # the bare response's empty body
        if message["type"] == "http.response.start" and not any(
            key == b"content-type" for key, _ in message.get("headers", ())
        ):
            refusal = self._explain(message["status"])
            if refusal is not None:
                self._replaced = True
                await send_refusal(self._send, refusal, self._content_type, trailers=self._trailers)
                return
        await self._send(message)
