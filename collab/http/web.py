"""The browser client: ``/`` and ``/annotations/{id}`` answer its page,
``/assets/…`` its built files (collab/web, made by ``npm run build`` in
client/; a wheel carries them).

The page is never cached (a new release takes effect on reload); assets have
content-hashed names and are cached for a year. Paths under /assets are
resolved by Starlette's StaticFiles, which refuses anything outside the
folder.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from collab.errors import Unavailable
from collab.http.common import error_response

WEB = Path(__file__).resolve().parents[1] / "web"
NOT_BUILT = (
    "the browser client is not built: run `npm --prefix client ci && npm --prefix client run "
    "build` (Node >= 20), or start `collab demo`, which builds it"
)


async def page(request: Request) -> Response:
    index = WEB / "index.html"
    if not index.is_file():
        return error_response(Unavailable(NOT_BUILT))
    return FileResponse(index, headers={"cache-control": "no-cache"})


class Assets(StaticFiles):
    """Hashed build outputs: immutable once served."""

    def __init__(self) -> None:
        super().__init__(directory=WEB / "assets", check_dir=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_cached(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                message.setdefault("headers", []).append(
                    (b"cache-control", b"public, max-age=31536000, immutable")
                )
            await send(message)

        await super().__call__(scope, receive, send_cached)


routes = [
    Route("/", page, methods=["GET"]),
    Route("/annotations/{annotation_id}", page, methods=["GET"]),
    Mount("/assets", app=Assets()),
]
