"""The coordinator's front door: the one port sites reach, passing Flower's Fleet API only.

Flower 1.42 serves its Fleet API (what SuperNodes call), its Control API (start a run,
register or evict a node) and its Runtime API on one port, the last two without any
authentication in the open-source build. So the SuperLink listens on the coordinator's
loopback only, and this gateway listens where sites connect: it terminates TLS with the
pilot's server certificate and forwards exactly `POST /v1/fleet/<call>` to the SuperLink
(over TLS again, checked against the pilot's CA), with the body and Flower's signed
node-authentication headers unchanged. Everything else gets 404 (never 401/403, which a
SuperNode reads as "evicted" or "run over"); an unreachable SuperLink gets 503, which
SuperNodes retry.

Run: `python -m fedviz.pilot.gateway LISTEN UPSTREAM CERT KEY CA` (the coordinator role
starts it).
"""

from __future__ import annotations

import re
import sys
from typing import Any

FLEET = re.compile(r"^/v1/fleet/[a-z0-9-]+$")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
MAX_BODY = 64 * 1024 * 1024
"""Fleet messages carry at most 5 MiB chunks and 10 MB app bundles."""


def allowed(method: str, path: str) -> bool:
    """Only the Fleet API's calls pass: POST /v1/fleet/<call>."""
    return method == "POST" and FLEET.match(path) is not None


def make_app(upstream: str, ca: str) -> Any:
    """The ASGI app forwarding Fleet calls to `upstream` (https://127.0.0.1:PORT)."""
    import httpx

    client = httpx.AsyncClient(verify=ca, timeout=httpx.Timeout(60.0, read=120.0))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if not allowed(scope["method"], scope["path"]):
            await _answer(send, 404, b"not found")
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                await _answer(send, 413, b"too large")
                return
            if not message.get("more_body"):
                break
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.decode("latin-1").lower() not in HOP_BY_HOP
        ]
        try:
            reply = await client.post(upstream + scope["path"], headers=headers, content=body)
        except httpx.HTTPError:
            await _answer(send, 503, b"the SuperLink is not reachable")
            return
        out = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in reply.headers.items()
            if k.lower() not in HOP_BY_HOP
        ]
        await send({"type": "http.response.start", "status": reply.status_code, "headers": out})
        await send({"type": "http.response.body", "body": reply.content})

    return app


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
    )
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 5:
        print("usage: python -m fedviz.pilot.gateway LISTEN UPSTREAM CERT KEY CA", file=sys.stderr)
        return 2
    listen, upstream, cert, key, ca = args
    import uvicorn

    host, _, port = listen.rpartition(":")
    uvicorn.run(
        make_app(f"https://{upstream}", ca),
        host=host.strip("[]"),
        port=int(port),
        ssl_certfile=cert,
        ssl_keyfile=key,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
