"""The whole account flow over real processes: uvicorn, `dramatiq workers`, Redis, PostgreSQL, SMTP."""

from __future__ import annotations

import httpx

from tests.support import PASSWORD, code_in


async def test_register_email_activate_login_refresh_and_reuse_detection(stack, smtp):
    web, url = stack.web()
    worker = stack.worker()
    email = "grace@example.com"
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        # Register, with a request id the worker's log lines must carry
        response = await http.post(
            "/api/v1/users", json={"email": email, "password": PASSWORD}, headers={"X-Request-ID": "e2e-flow-1"}
        )
        assert response.status_code == 201
        assert response.headers["X-Request-ID"] == "e2e-flow-1"
        # The code arrives over SMTP, sent by the worker
        code = code_in((await smtp.wait_for(email, timeout=20))[0])
        activated = await http.post("/api/v1/users/activate", json={"code": code}, auth=(email, PASSWORD))
        assert activated.status_code == 200
        assert activated.json()["is_active"] is True
        tokens = (await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})).json()
        me = await http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert me.json()["email"] == email
        rotated = await http.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert rotated.status_code == 200
        reused = await http.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert reused.status_code == 401
        # The welcome email follows activation
        await smtp.wait_for(email, count=2, timeout=20)
        logout = await http.post("/api/v1/auth/logout", json={"refresh_token": rotated.json()["refresh_token"]})
        assert logout.status_code == 204

    web.stop()
    worker.stop()
    # One JSON line per request with the documented fields
    requests = [line for line in web.logs() if line.get("message") == "request"]
    register = next(line for line in requests if line["request_id"] == "e2e-flow-1")
    assert register["route"] == "/api/v1/users"
    assert register["method"] == "POST" and register["status"] == 201
    assert {"time", "level", "duration_ms"} <= set(register)
    me_line = next(line for line in requests if line["route"] == "/api/v1/users/me")
    assert me_line["user_id"] == me.json()["id"]
    # The worker's log lines for that email carry the request's id
    sent = [line for line in worker.logs() if line.get("message") == "email sent"]
    assert any(line.get("request_id") == "e2e-flow-1" for line in sent)
    # Secrets never reach the logs
    everything = web.text() + worker.text()
    for secret in (PASSWORD, code, tokens["access_token"], tokens["refresh_token"]):
        assert secret not in everything
