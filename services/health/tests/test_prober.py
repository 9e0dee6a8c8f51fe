"""What the prober reads of an engine's /v1/models, however malformed."""

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from tmx_health.prober import Prober, ServedModel


def engine(body: bytes) -> Starlette:
    async def models(request):
        return Response(body, media_type="application/json")
    return Starlette(routes=[Route("/v1/models", models)])


@pytest.mark.parametrize("body, served", [
    (b'{"data": [{"id": "m", "max_model_len": 8192}]}', [ServedModel("m", 8192)]),
    (b'{"data": [{"id": "m", "max_model_len": "8k"}, {"id": "n", "max_model_len": [1]},'
     b' {"id": "o", "max_model_len": 1e400}, {"id": "p", "max_model_len": -1}, {"id": "q"}]}',
     [ServedModel(m, 0) for m in "mnopq"]),  # a length it cannot read is unknown, not a failed probe
    (b'{"data": [{"id": 5}, {"id": ""}, {"id": "m"}, 5]}', [ServedModel("m", 0)]),
    (b'{"data": ' + b"[" * 5000 + b"]" * 5000 + b"}", None),
    (b'{"data": 5}', None), (b"not json", None), (b"[]", None),
])
async def test_models_reads_what_it_can_and_nothing_it_cannot(asgi_server, body, served):
    async with asgi_server(engine(body), lifespan="off") as (url, _), aiohttp.ClientSession() as session:
        assert await Prober(session, "/health", 2.0).models(url) == served
