"""The service's API docs (/docs: Swagger UI, /redoc: ReDoc) with no network.

FastAPI's pages load Swagger UI and ReDoc from CDNs, a favicon from FastAPI's site and
ReDoc's fonts from Google: offline they render nothing, online they tell those hosts who
reads the docs. Here the same pages load the dist files that the fastapi-offline package
ships (pinned in requirements/constraints.txt), served by the service itself under
/docs-assets, and every outside request the bundles would make on their own is turned off:
Swagger UI's spec validator badge (validatorUrl: null) and ReDoc's sidebar logo (an image
from its vendor's CDN, replaced by an empty inline image).
"""

from __future__ import annotations

import functools
from pathlib import Path

from starlette.requests import Request

ASSETS_URL = "/docs-assets"
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
# ReDoc 2's sidebar shows its vendor's logo from a CDN; the image hides itself on error
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
EMPTY_IMAGE = b"data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw=="
# swagger-ui's default validator sends the spec's URL to validator.swagger.io
SWAGGER_PARAMETERS = {"validatorUrl": None}


def assets_folder() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def offline_redoc(bundle: bytes) -> bytes:
    """ReDoc's bundle without its one outside image; fails loudly when a new version of
    the package moves it, rather than letting the page reach out again."""
    if bundle.count(REDOC_LOGO) != 1:
        raise RuntimeError(f"redoc.standalone.js in {assets_folder()} no longer holds "
                           f"{REDOC_LOGO.decode()} once: check vista/api_docs.py against "
                           "the installed fastapi-offline")  # fmt: skip
    return bundle.replace(REDOC_LOGO, EMPTY_IMAGE)


@functools.cache
def asset(name: str) -> bytes:
    """One dist file as served (read once, on the first docs page view)."""
    content = (assets_folder() / name).read_bytes()
    return offline_redoc(content) if name == "redoc.standalone.js" else content


def add_offline_docs(app) -> None:
    """/docs, /docs/oauth2-redirect, /redoc and their assets on ``app`` (made with
    docs_url=None and redoc_url=None). Pages use paths relative to the root path, so a
    service behind a proxy prefix still finds them."""
    from fastapi import HTTPException
    from fastapi.openapi.docs import (
        get_redoc_html,
        get_swagger_ui_html,
        get_swagger_ui_oauth2_redirect_html,
    )
    from fastapi.responses import Response

    oauth2_redirect = "/docs/oauth2-redirect"

    @app.get(f"{ASSETS_URL}/{{name}}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, f"no docs asset {name!r}")
        return Response(asset(name), media_type=MEDIA_TYPES[Path(name).suffix],
                        headers={"cache-control": "public, max-age=86400"})  # fmt: skip

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request):
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect():
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request):
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
