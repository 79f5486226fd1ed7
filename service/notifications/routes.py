"""GET /dev/mail: the development inbox (served only with APP_ENV=development and no SMTP_HOST; elsewhere
the route does not exist and answers 404). JSON, or an HTML page for a browser (Accept: text/html)."""

from __future__ import annotations

import html

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from service.http.openapi import Body, operation
from service.json import json_response
from service.notifications import inbox

CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>tasklane development inbox</title>
<style>body{{font-family:sans-serif;margin:2em}} article{{border-bottom:1px solid #ccc;padding:.5em 0}}
pre{{white-space:pre-wrap}}</style></head>
<body><h1>Development inbox</h1><p>The last {keep} emails the worker printed instead of sending (newest first).</p>
{items}
</body>
</html>
"""


class MailQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str | None = Field(None, max_length=320, description="Only emails to this address (case-insensitively)")


class MailOut(BaseModel):
    id: str
    to: str
    subject: str
    body: str
    created_at: str = Field(description="When the worker printed it (ISO 8601)")


class MailList(BaseModel):
    items: list[MailOut]


def _page(items: list[dict[str, str]]) -> str:
    articles = "\n".join(
        f"<article><h2>{html.escape(item['subject'])}</h2><p>To {html.escape(item['to'])}, "
        f"{html.escape(item['created_at'])}</p><pre>{html.escape(item['body'])}</pre></article>"
        for item in items
    )
    return PAGE.format(keep=inbox.KEEP, items=articles or "<p>No email yet.</p>")


@operation(
    summary="The last emails, printed instead of sent (development only)",
    tag="development",
    query=MailQuery,
    responses={200: (MailList, Body("text/html"))},
    auth=None,
    description="Exists only with APP_ENV=development and no SMTP_HOST, where the worker prints emails to its "
    f"log instead of sending them: the last {inbox.KEEP}, newest first. JSON, or HTML with Accept: text/html.",
)
async def dev_mail(request: Request) -> Response:
    query = MailQuery.model_validate(dict(request.query_params))
    items = await inbox.latest(request.state.redis, query.to)
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(_page(items), headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})
    return json_response({"items": items}, headers={"Cache-Control": "no-store"})


routes = [Route("/dev/mail", dev_mail, methods=["GET"])]
