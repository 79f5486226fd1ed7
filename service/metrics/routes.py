"""GET /api/v1/metrics (JSON) and GET /metrics (Prometheus text): the same figures, summed over every
web and worker process. With METRICS_TOKEN set both want `Authorization: Bearer <METRICS_TOKEN>`;
unset, they are open (development). Redis down: 503 problem+json (every figure but one lives there)."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.errors import Unauthorized
from service.http.openapi import Body, operation
from service.json import json_response
from service.messages import is_rabbitmq
from service.metrics import prometheus
from service.metrics.snapshot import Snapshot, read_snapshot


def authorize(request: Request) -> None:
    token: str = request.state.settings.metrics_token
    if not token:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("Send the metrics token as 'Authorization: Bearer <METRICS_TOKEN>'")


async def _snapshot(request: Request) -> Snapshot:
    authorize(request)
    # This process's own deltas first, so what it just served shows at once; other processes' deltas
    # arrive within their flush interval.
    await request.state.metrics.flush(request.state.redis)
    settings = request.state.settings
    return await read_snapshot(
        request.state.redis,
        request.state.db,
        queue_prefix=settings.broker_queue_prefix,
        rabbitmq_url=settings.broker_url if is_rabbitmq(settings) else None,
    )


@operation(
    summary="Metrics of every process, as JSON",
    tag="operations",
    responses={200: Body("application/json", {"type": "object"})},
    auth="metrics",
    headers={200: {"Cache-Control": "no-store"}},
)
async def metrics_json(request: Request) -> Response:
    snapshot = await _snapshot(request)
    return json_response(snapshot.public(), headers={"Cache-Control": "no-store"})


@operation(
    summary="Metrics in Prometheus text format",
    tag="operations",
    responses={200: Body("text/plain")},
    auth="metrics",
)
async def metrics_text(request: Request) -> Response:
    snapshot = await _snapshot(request)
    return Response(prometheus.render(snapshot), media_type=prometheus.CONTENT_TYPE)


api_routes = [Route("/metrics", metrics_json, methods=["GET"])]  # mounted under the API prefix
routes = [Route("/metrics", metrics_text, methods=["GET"])]
