"""The page's files and the Spotify login's browser round trip (/login, /callback)."""

from __future__ import annotations

import html
import secrets
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from pressedplay.errors import UserError
from pressedplay.server.context import Context, spotify_client
from pressedplay.spotify_account import user_errors

STATE_COOKIE = "pressedplay_login_state"
WEB = {  # URL path -> (packaged file under pressedplay/web/, media type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
# The page may load and talk to this server only; the preview is a blob: URL.
_CSP = (
    "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


def read_web() -> dict[str, bytes]:
    """The packaged files, read once: a broken install fails before anything is served."""
    return {
        path: files("pressedplay").joinpath("web", name).read_bytes()
        for path, (name, _) in WEB.items()
    }


def _page(context: Context, path: str) -> Response:
    headers = {**HEADERS, "Cache-Control": "no-cache"}
    return Response(context.web[path], media_type=WEB[path][1], headers=headers)


# The cheap endpoints are async: they never wait for a thread behind picture requests.
@router.get("/")
async def index(context: Context) -> Response:
    return _page(context, "/")


@router.get("/app.js")
async def script(context: Context) -> Response:
    return _page(context, "/app.js")


@router.get("/style.css")
async def style(context: Context) -> Response:
    return _page(context, "/style.css")


def _message_page(title: str, text: str, status: int = 200) -> HTMLResponse:
    """A plain page for the login's browser tab (no script, the page's style)."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<title>pressedplay: {html.escape(title)}</title><link rel="stylesheet" '
        'href="/style.css"></head><body class="message"><main><h1>'
        f"{html.escape(title)}</h1><p>{html.escape(text)}</p>"
        '<p><a href="/">Back to pressedplay</a></p></main></body></html>'
    )
    return HTMLResponse(body, status_code=status, headers=HEADERS)


@router.get("/login")
def login(request: Request, context: Context) -> Response:
    """To Spotify's consent page; a random state in a cookie ties the answer to it."""
    try:
        sp = spotify_client(context, request)
    except HTTPException as exc:
        return _message_page("Spotify is not configured", str(exc.detail), 503)
    state = secrets.token_urlsafe(24)
    response = RedirectResponse(sp.auth_manager.get_authorize_url(state=state), 303)
    response.set_cookie(
        STATE_COOKIE, state, max_age=600, path="/callback", httponly=True, samesite="lax"
    )
    return response


@router.get("/callback")
def callback(
    request: Request,
    context: Context,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    """Where Spotify sends the browser back: the code becomes a token in the CLI's
    token cache (spotify_account.token_cache_path())."""
    expected = request.cookies.get(STATE_COOKIE)
    if error is not None:
        page = _message_page("Not logged in", f"Spotify answered: {error[:100]}", 400)
    elif not (code and state and expected and secrets.compare_digest(state, expected)):
        page = _message_page(
            "Not logged in",
            "This login did not start here or took too long; log in again from the page.",
            400,
        )
    else:
        sp = spotify_client(context, request)
        try:
            with user_errors(sp):
                sp.auth_manager.get_access_token(code, as_dict=False, check_cache=False)
            page = _message_page(
                "Logged in to Spotify",
                "You can close this tab: the pressedplay page can now save playlists.",
            )
        except UserError as exc:
            page = _message_page("Not logged in", str(exc), 502)
    page.delete_cookie(STATE_COOKIE, path="/callback")
    return page
