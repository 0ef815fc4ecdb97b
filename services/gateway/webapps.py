"""The web apps on the gateway's port: the built player app at /app/ and the
managers' console at /console/ (web/dist, built by `make web`), and the
development sign-in (POST /dev/token) that exists only with the development
secret.

Files are read once at start into memory, so a request can only ever name a
file the build wrote (no path is joined from a URL), and every answer carries
the same security headers: a strict Content-Security-Policy (no inline
script, calls only to this origin), nosniff, no referrer, no framing.
Content-hashed assets are cached for a year as immutable; index.html is
`no-cache` (revalidated by its ETag), so a new build is seen at once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from services.gateway.domain import ADMIN, CAMPAIGN_MANAGER, PLAYER
from services.gateway.tokens import issue_token
from services.kit.clock import Clock

log = structlog.get_logger()

APPS = ("app", "console")
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
IMMUTABLE = b"public, max-age=31536000, immutable"
REVALIDATE = b"no-cache"
PLAIN_TEXT = ((b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store"))
# esbuild's [name]-[hash] file names: eight upper-case letters and digits.
HASHED_NAME = re.compile(r"-[A-Z0-9]{8}(\.[a-z0-9]+)+$")
DEV_TOKEN_PATH = "/dev/token"
DEV_TOKEN_TTL_SECONDS = 8 * 3600
DEV_ROLES = {PLAYER: [PLAYER], CAMPAIGN_MANAGER: [CAMPAIGN_MANAGER], ADMIN: [ADMIN]}
DEV_SUBJECT = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")
DEV_BODY_LIMIT = 4096


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    gzipped: bytes | None
    content_type: str
    cache_control: bytes
    etag: bytes


def _load(root: Path) -> dict[str, StaticFile]:
    """Every file under root by its URL path; `.gz` files are the precompressed
    form of the file beside them, not files of their own."""
    files: dict[str, StaticFile] = {}
    if not root.is_dir():
        return files
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix == ".gz":
            continue
        relative = path.relative_to(root).as_posix()
        content_type = CONTENT_TYPES.get(path.suffix)
        if content_type is None:
            continue
        body = path.read_bytes()
        compressed = path.with_name(path.name + ".gz")
        files["/" + relative] = StaticFile(
            body=body,
            gzipped=compressed.read_bytes() if compressed.is_file() else None,
            content_type=content_type,
            cache_control=IMMUTABLE if HASHED_NAME.search(path.name) else REVALIDATE,
            etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"'.encode(),
        )
    return files


def _header(scope: dict, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


async def _answer(
    send: Callable, status: int, body: bytes, headers: list[tuple[bytes, bytes]], head=False
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                *SECURITY_HEADERS,
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body, "more_body": False})


async def _text(send: Callable, status: int, text: str, headers=()) -> None:
    await _answer(
        send,
        status,
        text.encode(),
        [*PLAIN_TEXT, *headers],
    )


class WebApps:
    """GET/HEAD of the built apps. Paths without a file of their own inside an
    app get its index.html (the apps route by the URL's fragment, so this only
    serves bookmarks of the bare app path)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._files = _load(root)
        built = sorted(app for app in APPS if f"/{app}/index.html" in self._files)
        log.info("web_apps_loaded", root=str(root), apps=built, files=len(self._files))

    def handles(self, scope: dict) -> bool:
        path = scope["path"]
        if path == "/":
            # A browser opening the bare address gets the player app; API
            # clients keep the gateway's SERVICE_NOT_FOUND answer.
            return "text/html" in _header(scope, b"accept")
        return any(path == f"/{app}" or path.startswith(f"/{app}/") for app in APPS)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        path, method = scope["path"], scope["method"]
        if method not in ("GET", "HEAD"):
            await _text(send, 405, "the web apps answer GET and HEAD\n", [(b"allow", b"GET, HEAD")])
            return
        if path == "/":
            await _answer(send, 302, b"", [(b"location", b"/app/"), (b"cache-control", REVALIDATE)])
            return
        app = path.removeprefix("/").partition("/")[0]
        if path == f"/{app}":
            await _answer(
                send, 308, b"", [(b"location", f"/{app}/".encode()), (b"cache-control", REVALIDATE)]
            )
            return
        file = self._files.get(path)
        if file is None and "/assets/" not in path:
            file = self._files.get(f"/{app}/index.html")
        if file is None:
            if f"/{app}/index.html" not in self._files:
                await _text(
                    send, 404, f"the {app} is not built: run `make web` (it reads {self._root})\n"
                )
            else:
                await _text(send, 404, "no such file\n")
            return
        headers = [
            (b"content-type", file.content_type.encode()),
            (b"cache-control", file.cache_control),
            (b"etag", file.etag),
            (b"vary", b"Accept-Encoding"),
        ]
        asked = (tag.strip() for tag in _header(scope, b"if-none-match").split(","))
        if file.etag.decode() in asked:
            await _answer(send, 304, b"", headers)
            return
        body = file.body
        if file.gzipped is not None and "gzip" in _header(scope, b"accept-encoding"):
            body = file.gzipped
            headers.append((b"content-encoding", b"gzip"))
        await _answer(send, 200, body, headers, head=method == "HEAD")


@dataclass(frozen=True)
class DevSignIn:
    """POST /dev/token {"subject": "m-1", "role": "player"} answers a token
    signed with the development secret. The gateway builds it only when it
    verifies tokens with that secret: with JWKS keys the path does not exist."""

    secret: bytes
    issuer: str
    audience: str
    clock: Clock

    def handles(self, scope: dict) -> bool:
        return scope["path"] == DEV_TOKEN_PATH

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["method"] != "POST":
            await _text(send, 405, "POST a JSON body here\n", [(b"allow", b"POST")])
            return
        if not _header(scope, b"content-type").startswith("application/json"):
            await _text(send, 415, "send content-type application/json\n")
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > DEV_BODY_LIMIT:
                await _text(send, 413, f"the body is over {DEV_BODY_LIMIT} bytes\n")
                return
            if not message.get("more_body"):
                break
        try:
            request = json.loads(body)
            subject, role = request["subject"], request.get("role", PLAYER)
        except (ValueError, TypeError, KeyError):
            await _text(send, 400, 'send {"subject": "<member id>", "role": "player"}\n')
            return
        if not isinstance(subject, str) or not DEV_SUBJECT.match(subject):
            await _text(send, 400, "subject: 1 to 64 letters, digits and . _ @ + -\n")
            return
        if role not in DEV_ROLES:
            await _text(send, 400, f"role: one of {', '.join(DEV_ROLES)}\n")
            return
        token = issue_token(
            self.secret,
            subject=subject,
            roles=DEV_ROLES[role],
            issuer=self.issuer,
            audience=self.audience,
            now_us=self.clock.now_us(),
            ttl_seconds=DEV_TOKEN_TTL_SECONDS,
        )
        log.info("dev_token_issued", subject=subject, role=role)
        answer = {"token": token, "subject": subject, "roles": DEV_ROLES[role]}
        answer["expires_in_seconds"] = DEV_TOKEN_TTL_SECONDS
        await _answer(
            send,
            200,
            json.dumps(answer).encode(),
            [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
        )
