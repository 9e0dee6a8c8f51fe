"""The Python floor for `peer_overhead`: the gateway's own server and client stack (uvicorn with httptools and
uvloop, aiohttp with the gateway's session options) forwarding requests with nothing else: no routing, no
tenancy, no metering, no metrics, no audit, no failover. It reads the body and parses it (any router must, to
find the model), posts it to one upstream and relays the answer, whole or chunk by chunk as it arrives.

What Tensormux adds over this arm is the cost of its features; what this arm adds over the direct call is the
cost of the stack itself, which no Python code on top of it can remove.
Run: `python bench/bare_proxy.py --upstream http://127.0.0.1:8000 --port 9000 [--workers 2]`.
"""

from __future__ import annotations

import argparse
import json
import os

import aiohttp
import uvicorn

UPSTREAM_ENV = "BARE_PROXY_UPSTREAM"


class BareProxy:
    def __init__(self) -> None:
        self.upstream = os.environ[UPSTREAM_ENV]
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["path"] == "/health":  # for the bench to wait on
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        stream = json.loads(body).get("stream", False)
        async with self.session.post(self.upstream + scope["path"], data=body,
                                     headers={"content-type": "application/json"}) as upstream:
            headers = [(b"content-type", upstream.headers.get("content-type", "application/json").encode())]
            if not stream:
                data = await upstream.read()
                headers.append((b"content-length", str(len(data)).encode()))
                await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
                await send({"type": "http.response.body", "body": data})
                return
            await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
            async for chunk in upstream.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.session = aiohttp.ClientSession(  # as the gateway opens its own
                    connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=30),
                    auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    os.environ[UPSTREAM_ENV] = args.upstream
    uvicorn.run("bare_proxy:BareProxy", factory=True, host="127.0.0.1", port=args.port, workers=args.workers,
                loop="uvloop", http="httptools", log_level="warning", access_log=False,
                app_dir=os.path.dirname(os.path.abspath(__file__)))


if __name__ == "__main__":
    main()
