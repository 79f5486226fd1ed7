"""The route table: the API under one prefix, and paths that answer for all their methods.

Every API route is written relative to API_PREFIX, and `mount` puts them under it once, when the table
is built (a Location names a resource with API_PREFIX too). The table itself stays flat: a Starlette
Mount would route every API request twice (a router inside the router), a cost on the hottest path
(GET /tasks) for nothing the API needs from a sub-application.

Routes that share a path answer for all of them: a method none serves gets 405 with an `Allow` header
naming every method the path serves (RFC 9110), and OPTIONS gets 204 with that same header.

Starlette hands a request whose method matches no route to the first route with the path, whose `Allow`
would name only its own methods; `shared_paths` gives each route the whole set of its path. And a path
written out (`/imports/preview`) is that resource alone, never a value of a parameter of another route's
path (`/imports/{id}`): GET /imports/preview is 405, not "no import with id preview".
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Receive, Scope, Send

API_PREFIX = "/api/v1"


class PathRoute(Route):
    allow: str = ""
    literal_paths: frozenset[str] = frozenset()  # paths of other routes this one's parameters must not take

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["path"] in self.literal_paths:
            return Match.NONE, {}
        return super().matches(scope)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            if scope["method"] == "OPTIONS":
                await Response(status_code=204, headers={"Allow": self.allow})(scope, receive, send)
                return
            raise HTTPException(status_code=405, headers={"Allow": self.allow})
        await self.app(scope, receive, send)


def mount(prefix: str, routes: Sequence[Route]) -> list[Route]:
    """`routes`, written relative to `prefix`, as routes of their whole path."""
    return [
        Route(
            prefix + route.path,
            route.endpoint,
            methods=sorted(route.methods or ()),
            name=route.name,
            include_in_schema=route.include_in_schema,
        )
        for route in routes
    ]


def shared_paths(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """`routes`, each Route with methods turned into a PathRoute that knows every method of its path."""
    methods: dict[str, set[str]] = {}
    for route in routes:
        if isinstance(route, Route) and route.methods:
            methods.setdefault(route.path, {"OPTIONS"}).update(route.methods)
    literal = frozenset(path for path in methods if not route_has_parameters(path))
    out: list[BaseRoute] = []
    for route in routes:
        if isinstance(route, Route) and route.methods:
            shared = PathRoute(
                route.path,
                route.endpoint,
                methods=sorted(route.methods),
                name=route.name,
                include_in_schema=route.include_in_schema,
            )
            shared.allow = ", ".join(sorted(methods[route.path]))
            if route_has_parameters(route.path):
                shared.literal_paths = literal
            route = shared
        out.append(route)
    return out


def route_has_parameters(path: str) -> bool:
    return "{" in path
