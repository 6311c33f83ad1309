"""GET /console: the operator console, a static page over the public API.

The page and its assets hold no data, so they are served without the API token; every
call the page makes goes to the API routes, which apply AUTH_REQUIRED as usual. The files
ship inside this package (no CDN, no build step) and are read once, at app build.
"""

from __future__ import annotations

from importlib.resources import files

from litestar import Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

_ASSETS = {
    "index.html": "text/html",  # Litestar adds `; charset=utf-8` to text/* itself
    "console.js": "text/javascript",
    "console.css": "text/css",
}
# Scripts and styles only from this origin; the page talks only to this ingress.
# (`X-Content-Type-Options: nosniff` comes with every answer: security_headers.py.)
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
}


def console_router() -> Router:
    folder = files("sayna_sip.ingress") / "console"
    assets = {name: (folder / name).read_bytes() for name in _ASSETS}

    def _serve(name: str) -> Response[bytes]:
        if name not in assets:
            raise NotFoundException(f"no console asset {name!r}")
        return Response(assets[name], media_type=_ASSETS[name], headers=_HEADERS)

    @get("/console", include_in_schema=False, sync_to_thread=False)
    def console_page() -> Response[bytes]:
        return _serve("index.html")

    @get("/console/{name:str}", include_in_schema=False, sync_to_thread=False)
    def console_asset(name: FromPath[str]) -> Response[bytes]:
        return _serve(name)

    return Router(path="/", route_handlers=[console_page, console_asset])
