"""Routes that share a path answer for all of them: a method none serves gets 405 with an `Allow` header
naming every method the path serves (RFC 9110), and OPTIONS gets 204 with that same header.

Starlette hands a request whose method matches no route to the first route with the path, whose `Allow`
would name only its own methods; `shared_paths` gives each route the whole set of its path.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send


class PathRoute(Route):
    allow: str = ""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            if scope["method"] == "OPTIONS":
                await Response(status_code=204, headers={"Allow": self.allow})(scope, receive, send)
                return
            raise HTTPException(status_code=405, headers={"Allow": self.allow})
        await self.app(scope, receive, send)


def shared_paths(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """`routes`, each Route with methods turned into a PathRoute that knows every method of its path."""
    methods: dict[str, set[str]] = {}
    for route in routes:
        if isinstance(route, Route) and route.methods:
            methods.setdefault(route.path, {"OPTIONS"}).update(route.methods)
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
            route = shared
        out.append(route)
    return out
