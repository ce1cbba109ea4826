"""What keeps a request within bounds: the body size, the origin of POSTs, the uploaded
file and track ids, and how many picture requests are admitted at once."""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from fastapi import UploadFile
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pressedplay.inputs import TRACK_ID
from pressedplay.picture import Picture

MAX_UPLOAD = 10 * 1024 * 1024  # bytes of the image itself
# The whole request: the image plus the multipart envelope and the other fields.
MAX_BODY = MAX_UPLOAD + 64 * 1024
MAX_TRACKS = 100
IMAGE_QUEUE = 8  # picture requests admitted at once; the next gets 503 + Retry-After
RETRY_AFTER_S = 2
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # kept out of file names echoed in errors


class BodyLimit:
    """413 for a request body over `limit` bytes: at once when Content-Length says so,
    else when the bytes read pass it (a chunked body has no Content-Length; a short one
    is cut by HTTP framing before the app sees more).

    Starlette's own limiter answers a declared oversize in plain text; this one raises an
    HTTPException inside the body read, which FastAPI's handlers turn into JSON like every
    other error.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({"detail": _too_large(int(declared))}, status_code=413)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, _too_large(seen, more=True))
            return message

        await self.app(scope, counted, send)


class SameOrigin:
    """403 for a POST sent by another site's page: the API has no login of its own, so a
    form or script there could otherwise store verdicts or fill the user's Spotify account.
    Browsers send Origin with every cross-origin POST; scripts and curl send none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and origin != f"{scope['scheme']}://{headers.get('host')}":
                detail = f"refused a request from the page of another site ({origin[:100]})"
                await JSONResponse({"detail": detail}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _too_large(size: int, *, more: bool = False) -> str:
    at_least = "over " if more else ""
    return (
        f"upload too large: {at_least}{size:,} bytes; the limit is {MAX_UPLOAD // 2**20} MB "
        f"({MAX_UPLOAD:,} bytes) per image"
    )


def read_upload(upload: UploadFile) -> Picture:
    """The uploaded picture, named without folders; 413 past MAX_UPLOAD (a body within
    MAX_BODY can still carry a file a little over it)."""
    name = _CONTROL.sub("?", Path(upload.filename or "").name)[:200] or "upload"
    data = upload.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise HTTPException(413, f"{name}: {_too_large(len(data), more=True)}")
    return Picture(name, data)


def track_ids(values: Sequence[str] | None) -> list[str]:
    """The form's track ids, each once; 422 for none, too many or one that is no id."""
    ids = list(dict.fromkeys(values or ()))
    if not ids:
        raise HTTPException(422, "track: give the playlist's track ids (field `track`, repeated)")
    if len(ids) > MAX_TRACKS:
        raise HTTPException(422, f"track: at most {MAX_TRACKS} tracks, got {len(ids)}")
    bad = [t for t in ids if not TRACK_ID.fullmatch(t)]
    if bad:
        raise HTTPException(422, f"track: {bad[0][:40]!r} is not a Spotify track id")
    return ids


def _libc_trim() -> ctypes._CFuncPtr | None:
    """glibc's malloc_trim, or None elsewhere (musl, macOS)."""
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


_MALLOC_TRIM = _libc_trim()


class ImageGate:
    """Admission for picture requests: at most `size` inside at once, the next refused
    with 503 + Retry-After rather than queued on a thread. When the last one leaves,
    glibc is asked to return freed memory (it keeps freed arenas otherwise: a burst of
    large decodes once left 3 GB resident)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._inside = 0
        self._lock = threading.Lock()

    @contextmanager
    def admitted(self) -> Iterator[None]:
        with self._lock:
            if self._inside >= self.size:
                raise HTTPException(
                    503,
                    f"busy: {self.size} pictures are being processed; try again shortly",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
                idle = self._inside == 0
            if idle and _MALLOC_TRIM is not None:
                _MALLOC_TRIM(0)
