"""The web page and its JSON API: `pressedplay serve`.

One page (packaged under pressedplay/web/, nothing fetched from elsewhere) and a small JSON
API that answers in the CLI's `--json` shapes, so the page, scripts and the CLI agree: its
routes call the same use cases (pressedplay.picture). The app is local and single-user,
like the CLI: it predicts with one model, picks from one catalog (or continues with one
trecs run), stores verdicts in one feedback database and acts in Spotify for the login
kept in the CLI's token cache. `create_app` builds it; `serve` runs it in the foreground
and `running` in a background thread (notebooks, tests).

Uploads are counted while they are read, whatever Content-Length says or whether it is
there at all, and refused with 413 past the limit; images are validated by the same
decode as every other input (pressedplay.images), bounded by pixels, not bytes.

Under a burst, at most IMAGE_QUEUE picture requests are admitted (one computes, the rest
wait their turn on a thread); more are answered 503 with Retry-After at once, so threads
and memory stay bounded and the cheap endpoints (the page, /api/config, async) answer
meanwhile. When the last admitted request ends, freed decode buffers go back to the OS.

The modules: app (create_app, middleware, error handlers), routes (the JSON API), pages
(the page's files, the Spotify login), schemas (the JSON shapes), limits (sizes, origins,
admission), context (what routes get of their app), running (sockets, uvicorn).
"""

from pressedplay.server.app import create_app
from pressedplay.server.limits import IMAGE_QUEUE, MAX_BODY, MAX_TRACKS, MAX_UPLOAD, ImageGate
from pressedplay.server.running import LOCAL_HOSTS, bind, hosts_for, running, serve, url

__all__ = [
    "IMAGE_QUEUE",
    "LOCAL_HOSTS",
    "MAX_BODY",
    "MAX_TRACKS",
    "MAX_UPLOAD",
    "ImageGate",
    "bind",
    "create_app",
    "hosts_for",
    "running",
    "serve",
    "url",
]
