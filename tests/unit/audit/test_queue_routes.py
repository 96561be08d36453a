"""The queue routes without a broker: a clear 503, and 415/400 before anything is asked."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from postline.audit.api import ApiServer
from postline.audit.settings import AuditSettings
from postline.values import HostPort
from tests.support.net import free_port
from tests.unit.audit.test_api_fake import FakeIndex


async def test_without_queue_actions_the_routes_say_so_and_bad_bodies_are_still_400(
    tmp_path: Path,
) -> None:
    port = free_port()
    server = ApiServer(AuditSettings(trail_dir=tmp_path, api_listen=HostPort("127.0.0.1", port)),
                       FakeIndex())  # fmt: skip
    await server.start()
    base = f"http://127.0.0.1:{port}/v1/queue"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/retry", json={"all": True}) as response:
                assert response.status == 503
                assert "not available" in (await response.json())["error"]
            async with http.post(f"{base}/retry", json={"all": True, "ids": ["A"]}) as response:
                assert response.status == 400
            async with http.post(f"{base}/retry", data=b'{"all": true}') as response:
                assert response.status == 415  # not sent as application/json
            async with http.get(f"{base}/requests/abc") as response:
                assert response.status == 503
            async with http.get(f"{base}/retry") as response:
                assert response.status == 405
    finally:
        await server.close()
