"""GET /openapi.json and GET /docs: the API description and an interactive viewer of it (Swagger UI,
served from the openapi-ui-bundles package, so the page loads nothing from outside and can carry a
strict Content-Security-Policy)."""

from __future__ import annotations

from typing import Any

from openapi_ui_bundles import swagger_ui
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from service.json import json_response

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>tasklane API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""
INIT = 'window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});\n'


async def openapi_json(request: Request) -> Response:
    return json_response(request.app.state.openapi)


async def docs(request: Request) -> Response:
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": CSP})


async def init_js(request: Request) -> Response:
    return Response(INIT, media_type="text/javascript", headers={"Content-Security-Policy": CSP})


class _Assets(StaticFiles):
    async def get_response(self, path: str, scope: Any) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response


routes = [
    Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False),
    Route("/docs", docs, methods=["GET"], include_in_schema=False),
    Route("/docs/init.js", init_js, methods=["GET"], include_in_schema=False),
    Mount("/docs/assets", app=_Assets(directory=swagger_ui.static_path), name="docs-assets"),
]
