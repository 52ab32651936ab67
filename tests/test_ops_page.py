"""The operations page (issue 12, point 4): ``GET /ops`` on the API, the ``ops`` token only, no
name and no full ID number in what it receives, re-drive with a fixed payload checked first.
The end-to-end test drives Debian's chromium (Playwright, ``executable_path``) against the real
API server and the real services on a real Redis."""

import asyncio
import contextlib
import json
import os
import shutil
import socket

import httpx
import pytest

from services.ops.status import collect
from services.outlets.api import create_app
from tests.conftest import publish
from tests.harness import drain, services
from tests.people import make_id, permit, school

TOKENS = {"ops": "t-ops", "health": "t-health", "edu": "t-edu"}
CHROMIUM = "/usr/bin/chromium"


def client(settings):
    app = create_app(settings.model_copy(update={"api_tokens": TOKENS}))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


def bearer(who):
    return {"Authorization": f"Bearer {TOKENS[who]}"}


async def test_only_the_ops_token_opens_the_page_and_it_opens_no_departments_data(r, settings):
    async with client(settings) as c:
        assert (await c.get("/ops")).status_code == 200  # the login form: no data in it
        assert (await c.get("/ops", headers=bearer("health"))).status_code == 403
        for path in ("/ops/api/status", "/ops/api/graph", "/ops/api/figures",
                     "/ops/api/parked?stream=quarantine:psb:permit"):
            assert (await c.get(path)).status_code == 401
            assert (await c.get(path, headers=bearer("health"))).status_code == 403
            assert (await c.get(path, headers=bearer("ops"))).status_code == 200, path
        assert (await c.post("/ops/api/redrive", json={"stream": "quarantine:psb:permit", "id": "1-0"},
                             headers=bearer("edu"))).status_code == 403
        # the ops token reads no roster and no person
        assert (await c.get("/v1/rosters/health.family_doctor/320111", headers=bearer("ops"))).status_code == 403
        assert (await c.get(f"/v1/subjects/{make_id()}", headers=bearer("ops"))).status_code == 403


async def test_parked_records_reach_the_page_without_names_or_full_ids(r, settings):
    guardian, child, adult = make_id(), make_id("20180101"), make_id()
    await publish(r, "edu:application", school(guardian, child, xd="??"))
    await publish(r, "psb:permit", permit("QF", adult, district="999999"))
    await publish(r, "edu:application", b'{"xsxm": "\xe5\xb0\x8f\xe6\x98\x8e", broken')
    async with services(settings):
        await drain(r, settings)
    async with client(settings) as c:
        seen = ""
        for stream in ("quarantine:edu:application", "quarantine:psb:permit"):
            got = await c.get(f"/ops/api/parked?stream={stream}", headers=bearer("ops"))
            assert got.status_code == 200 and got.json()["entries"]
            seen += got.text
    for secret in (guardian, child, adult, "小明", "张三", json.dumps("小明"), json.dumps("张三")):
        assert secret not in seen
    assert guardian[:6] + "********" + guardian[-4:] in seen
    assert '"removed":["xsxm"]' in seen.replace(" ", "") and '"removed":["xm"]' in seen.replace(" ", "")


async def test_a_fix_that_fails_the_check_is_refused_and_changes_nothing(r, settings):
    await publish(r, "psb:permit", permit("QF", make_id(), district="999999", ywlsh="GA-FIX"))
    async with services(settings):
        await drain(r, settings)
    (eid, _), = await r.xrange("quarantine:psb:permit")
    async with client(settings) as c:
        bad = await c.post("/ops/api/redrive", headers=bearer("ops"), json={
            "stream": "quarantine:psb:permit", "id": eid.decode(), "changes": {"jzdqh": "123456"}})
        assert bad.status_code == 422 and "UNKNOWN_DISTRICT" in bad.json()["detail"]
        assert await r.xlen("quarantine:psb:permit") == 1 and await r.xlen("ingress:psb:permit") == 1
        good = await c.post("/ops/api/redrive", headers=bearer("ops"), json={
            "stream": "quarantine:psb:permit", "id": eid.decode(), "changes": {"jzdqh": "320111"}})
        assert good.status_code == 200 and good.json()["target"] == "ingress:psb:permit"
        again = await c.post("/ops/api/redrive", headers=bearer("ops"), json={
            "stream": "quarantine:psb:permit", "id": eid.decode(), "changes": {"jzdqh": "320111"}})
        assert again.status_code == 404  # once
    assert await r.xlen("quarantine:psb:permit") == 0 and await r.xlen("ingress:psb:permit") == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def api_server(settings):
    import uvicorn

    port = _free_port()
    app = create_app(settings.model_copy(update={"api_tokens": TOKENS}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), task.result()
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.mark.skipif(not shutil.which(CHROMIUM) and not os.environ.get("CI"), reason="no chromium here (CI installs it)")
async def test_in_chromium_log_in_see_every_stage_redrive_a_fix_and_watch_its_decision(r, settings, tmp_path):
    from playwright.async_api import async_playwright

    who = make_id()
    await publish(r, "psb:permit", permit("QF", make_id(), district="320102"))  # something decided already
    await publish(r, "psb:permit", permit("QF", who, district="999999", ywlsh="GA-PAGE"))
    await publish(r, "psb:permit", permit("QF", make_id(), qfrq="2025-02-30", ywlsh="GA-OTHER"))
    await publish(r, "edu:application", school(make_id(), make_id("20180101"), xd="??"))
    shot = os.environ.get("PERMITBUS_OPS_SCREENSHOT") or str(tmp_path / "ops.png")
    async with services(settings), api_server(settings) as base, async_playwright() as pw:
        await drain(r, settings)
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1500, "height": 1100})
        await page.goto(base + "/ops")
        # a department's token is refused at the login form
        await page.fill("#token", TOKENS["health"])
        await page.click("#login-button")
        await page.wait_for_selector("#login-error:not(.hidden)")
        assert "refused" in await page.inner_text("#login-error")
        await page.fill("#token", TOKENS["ops"])
        await page.click("#login-button")
        await page.wait_for_selector("#stages tbody tr")
        status = await collect(r, settings)
        for stage in status["stages"]:
            row = page.locator(f'#stages tr[data-stage="{stage["stage"]}"]')
            assert await row.count() == 1, stage["stage"]
            assert await page.locator("#graph text", has_text=stage["stage"]).count() >= 1, stage["stage"]
        # find the quarantined record
        await page.select_option("#parked-stream", "quarantine:psb:permit")
        await page.click("#parked-load")
        row = page.locator("#parked tbody tr", has_text="GA-PAGE")
        await row.wait_for()
        assert "UNKNOWN_DISTRICT" in await row.inner_text()
        html = await page.content()
        assert who not in html and "张三" not in html and "小明" not in html
        await row.locator("button.redrive").click()
        # a fix that fails the check: the error is shown, nothing moves
        await page.fill("#redrive-changes", '{"jzdqh": "123456"}')
        await page.click("#redrive-submit")
        await page.wait_for_selector("#redrive-error:not(.hidden)")
        assert "UNKNOWN_DISTRICT" in await page.inner_text("#redrive-error")
        assert await r.xlen("quarantine:psb:permit") == 2  # GA-PAGE and GA-OTHER, unchanged
        # the right fix: re-driven, and its decision arrives
        await page.fill("#redrive-changes", '{"jzdqh": "320111"}')
        await page.click("#redrive-submit")
        await page.wait_for_selector("#redrive-done:not(.hidden)")
        await page.wait_for_selector('#trace[data-state="decided"]', timeout=30_000)
        text = await page.inner_text("#trace")
        assert "outlet:health" in text
        health = await r.xrange("outlet:health")
        mine = [eid.decode() for eid, f in health if who in f[b"payload"].decode()]
        assert mine and mine[0] in text
        await page.locator("#parked tbody tr", has_text="GA-OTHER").wait_for()  # the list, re-read
        assert await page.locator("#parked tbody tr", has_text="GA-PAGE").count() == 0
        await page.wait_for_selector("#figures tbody tr")
        await page.screenshot(path=shot, full_page=True)
        await browser.close()


@pytest.mark.skipif(not shutil.which(CHROMIUM) and not os.environ.get("CI"), reason="no chromium here (CI installs it)")
async def test_in_chromium_the_page_shows_whatever_stages_and_verdicts_the_status_reports(r, settings, monkeypatch):
    """The page draws the stages ``collect()`` reports, those the topology's drawing lacks too,
    with their verdicts (the status branch's ``collect()`` replaces the stand-in at merge)."""
    from playwright.async_api import async_playwright

    from services.ops import status as status_mod

    real = status_mod.collect

    async def reported(r_, settings_, now=None):
        st = await real(r_, settings_, now)
        st["stages"][0] |= {"verdict": "STALLED", "backlog": 12, "rate_per_s": 0.0, "oldest_waiting_s": 31.25}
        st["stages"].append({"stage": "relay:some-new-target", "backlog": 3, "pending": 0, "oldest_waiting_s": None,
                             "rate_per_s": 2.5, "workers": 0, "verdict": "DOWN"})
        return st

    monkeypatch.setattr(status_mod, "collect", reported)
    async with api_server(settings) as base, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page()
        await page.goto(base + "/ops")
        await page.fill("#token", TOKENS["ops"])
        await page.click("#login-button")
        await page.wait_for_selector("#stages tbody tr")
        first = page.locator("#stages tbody tr").first
        assert "STALLED" in await first.inner_text() and "31.3" in await first.inner_text()
        assert await first.locator("td.STALLED").count() == 1
        new = page.locator('#stages tr[data-stage="relay:some-new-target"]')
        assert "DOWN" in await new.inner_text() and "2.5" in await new.inner_text()
        assert await page.locator("#graph text", has_text="relay:some-new-target").count() == 1
        assert await page.locator("#graph text", has_text="DOWN · backlog 3").count() == 1
        await browser.close()
