"""The web manager in a real browser (Debian's chromium, driven by Playwright) against the real stack.

Upload a generated XLSX, check the preview against the API, start, watch progress reach 100 %
while pausing and resuming, download the report and compare it with the simulator's record,
switch to English, and no console errors on the way. Screenshots of the main pages at 1280×800 and
390 px wide go to ``$ULAK_SCREENSHOTS`` (default ``build/screenshots``) for people to look at.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import xlsxwriter

from tests.chromium import chromium_path, launch_args
from tests.helpers import SimProcess, wait_for
from tests.integration.stack import Stack, running_stack, wait_state

playwright_sync = pytest.importorskip("playwright.sync_api")

PREFIX = "905327"
SHOTS = Path(os.environ.get("ULAK_SCREENSHOTS") or Path(__file__).parents[2] / "build" / "screenshots")


@pytest.fixture(scope="module")
def web_stack(ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("web")
    sim = SimProcess(workdir, "--account", "test:secret", "--seed", "5", "--dlr-delay", "0.05:0.2")
    with running_stack(workdir, sim, tps=60, name="web") as running:  # slow enough to pause midway
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        message = "no chromium: `apt-get install chromium` (./scripts/test does, as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=launch_args())
        yield launched
        launched.close()


class Console:
    """The page's console errors and uncaught exceptions."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


def _xlsx(path: Path, rows: int) -> None:
    """*rows* good rows, then 3 with numbers that are not mobile numbers and 2 repeats."""
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("Liste")
    sheet.write_row(0, 0, ["telefon", "ad"])
    numbers = [f"+{PREFIX}{i:06d}" for i in range(rows)] + ["12", "abc", "+90212"] + [f"+{PREFIX}000000"] * 2
    for i, number in enumerate(numbers, start=1):
        sheet.write_string(i, 0, number)
        sheet.write_string(i, 1, f"Ayşe {i}")
    book.close()


def _digits(text: str) -> int:
    return int(re.sub(r"\D", "", text))


def _shots(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path=str(SHOTS / f"{name}-1280.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SHOTS / f"{name}-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def _signed_in(browser: Any, stack: Stack, token: str) -> tuple[Any, Any, Console]:
    """A new browser context signed in with *token*: (context, page, the page's console errors)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    console = Console(page)
    page.goto(f"{stack.api.url}/")  # redirected to /ui/
    page.fill("#key", token)
    page.click("#signin")
    page.wait_for_selector("#nav:not([hidden])")
    return context, page, console


def test_a_campaign_from_upload_to_report_in_the_browser(
    web_stack: Stack, browser: Any, tmp_path: Path
) -> None:
    stack = web_stack
    upload = tmp_path / "kampanya.xlsx"
    _xlsx(upload, 600)
    context, page, console = _signed_in(browser, stack, stack.token)
    assert page.locator("#nav a").first.inner_text() == "Kampanyalar"  # Turkish by default
    assert page.evaluate("document.documentElement.lang") == "tr"

    page.click("a[href='#/new']")
    page.set_input_files("#f-file", str(upload))
    page.fill("#f-template", "Merhaba {ad}, kampanyamız başladı. RET yazıp 4545'e gönderin")
    page.fill("#f-name", "web test")
    # Optimised send times: the preview shows the plan, every accepted row in one hour or another.
    page.check("#f-optimized")
    page.click("#preview-button")
    page.wait_for_selector("#pv-plan", timeout=60_000)
    cells = page.locator(
        "#pv-plan tbody tr td:nth-child(2), #pv-plan tbody tr td:nth-child(3)"
    ).all_inner_texts()
    assert sum(_digits(c) for c in cells) == 600, cells
    page.uncheck("#f-optimized")
    page.click("#preview-button")
    page.wait_for_selector("#preview-card:not(:has(#pv-plan))", timeout=60_000)
    card = page.wait_for_selector("#preview-card", timeout=60_000)
    dry_run = card.get_attribute("data-job")
    with stack.client() as http:
        view = http.get(f"/v1/jobs/{dry_run}").json()
        summary_operators = http.get("/v1/operators").json()
    assert view["options"]["dry_run"] is True and view["state"] == "done"
    shown = {k: _digits(page.inner_text(f"#pv-{k}")) for k in ("rows", "accepted", "rejected", "parts")}
    assert shown == {
        "rows": view["counts"]["rows"],
        "accepted": view["counts"]["accepted"],
        "rejected": view["counts"]["rejected"],
        "parts": view["parts"]["total"],
    }
    assert shown["rows"] == 605 and shown["accepted"] == 600 and shown["rejected"] == 5
    prices = {o["name"]: float(o["price_per_part"]) for o in summary_operators}
    cost = sum(v["parts"] * prices[op] for op, v in view["operators"].items())
    shown_cost = float(page.inner_text("#pv-cost").replace(".", "").replace(",", "."))  # 1.234,50
    assert shown_cost == pytest.approx(cost, abs=0.01)
    samples = page.locator("#preview-card pre.msg").all_inner_texts()
    assert samples and samples[0] == view["samples"][0]["text"] and "Ayşe" in samples[0]
    assert not stack.records(PREFIX)  # a preview sends nothing
    _shots(page, "preview")

    page.click("#confirm-button")
    page.wait_for_url(re.compile(r"#/job/"))
    job_id = page.url.rsplit("/", 1)[1]
    page.wait_for_selector("#job-state[data-state='sending']", timeout=60_000)
    wait_for(lambda: len(stack.records(PREFIX)) > 60, timeout=60, what="sending to start")
    page.click("#pause")
    page.wait_for_selector("#job-state[data-state='paused']", timeout=30_000)
    with stack.client() as http:
        assert http.get(f"/v1/jobs/{job_id}").json()["state"] == "paused"
    _shots(page, "job-paused")
    page.click("#resume")
    page.wait_for_selector("#job-state[data-state='done']", timeout=120_000)
    page.wait_for_function("document.querySelector('#progress span').textContent.startsWith('100')")
    page.wait_for_selector("#funnel", timeout=30_000)
    _shots(page, "job-done")

    with page.expect_download() as downloaded:
        page.click("#dl-report")
    report_path = tmp_path / "report.csv"
    downloaded.value.save_as(report_path)
    with report_path.open(encoding="utf-8") as f:
        report = list(csv.DictReader(f))
    records = stack.records(PREFIX)
    at_smsc: dict[str, list[str]] = {}
    for r in records:
        at_smsc.setdefault(r["dst"], []).append(r["message_id"])
    assert len(report) == 600 and {row["status"] for row in report} == {"acked"}
    assert {row["msisdn"] for row in report} == set(at_smsc)
    for row in report:
        assert sorted(row["message_ids"].split()) == sorted(at_smsc[row["msisdn"]])

    for page_name in ("jobs", "operators", "lists"):
        page.goto(f"{stack.api.url}/ui/#/{page_name}")
        page.wait_for_selector("main .card")
        if page_name == "operators":
            page.wait_for_selector("[data-operator] table")
        _shots(page, page_name)

    # Replies as they come, by kind: a help word answered automatically, and a free reply.
    stack.sim.control(op="mo", system_id="test", source="905329990001", dest="4545", text="YARDIM")
    stack.sim.control(op="mo", system_id="test", source="905329990002", dest="4545", text="Kargom nerede?")
    page.goto(f"{stack.api.url}/ui/#/replies")
    page.wait_for_selector("#replies tbody tr:nth-child(2)", timeout=30_000)  # both, newest first
    assert page.locator("#replies tbody tr").count() == 2
    page.select_option("#r-kind", "keyword")
    page.wait_for_selector("#replies tbody tr:nth-child(2)", state="detached", timeout=10_000)
    assert page.locator("#replies tbody tr").count() == 1
    row = page.locator("#replies tbody tr").first.inner_text()
    assert "+905329990001" in row and "Anahtar kelime" in row and "YARDIM" in row, row
    _shots(page, "replies")
    page.click("#lang")
    assert page.locator("#nav a").first.inner_text() == "Campaigns"
    assert page.evaluate("document.documentElement.lang") == "en"
    page.goto(f"{stack.api.url}/ui/#/job/{job_id}")
    page.wait_for_selector("#job-state[data-state='done']")
    assert page.locator("#pause").inner_text() == "Pause"
    _shots(page, "job-en")
    context.close()
    assert console.errors == []


def test_the_pages_need_no_key_but_hold_no_data(web_stack: Stack) -> None:
    with web_stack.client() as http:
        http.headers.pop("Authorization", None)
        page = http.get("/ui/")
        script = http.get("/ui/app.js")
        data = http.get("/v1/jobs")
    assert page.status_code == 200 and "app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert script.status_code == 200 and "sessionStorage" in script.text
    assert data.status_code == 401


def test_a_read_only_key_sees_no_control_it_cannot_use(
    web_stack: Stack, browser: Any, tmp_path: Path
) -> None:
    stack = web_stack
    upload = tmp_path / "okuma.xlsx"
    _xlsx(upload, 20)
    with stack.client() as http, upload.open("rb") as f:
        created = http.post(
            "/v1/jobs", files={"file": (upload.name, f)}, data={"template": "Merhaba {ad}", "dry_run": "true"}
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        wait_state(http, job_id, "done", timeout=120)
        assert http.get("/v1/me").json()["scope"] == "write"
    with stack.client(stack.read_token) as http:
        assert http.get("/v1/me").json()["scope"] == "read"
    context, page, console = _signed_in(browser, stack, stack.read_token)
    assert page.locator("#nav a[href='#/new']").is_hidden()
    page.goto(f"{stack.api.url}/ui/#/job/{job_id}")
    try:
        page.wait_for_selector("#job-state[data-state='done']", timeout=30_000)
    except Exception as exc:  # say what the page shows instead
        raise AssertionError(f"{page.url}: {page.inner_text('main')[:500]} {console.errors}") from exc
    page.wait_for_selector("#read-only")
    assert page.locator("#pause, #resume, #cancel").count() == 0
    page.goto(f"{stack.api.url}/ui/#/lists")
    page.wait_for_selector("#optout-total")
    assert page.locator("#l-add, #l-numbers, main button.link").count() == 0  # no add, no remove
    page.goto(f"{stack.api.url}/ui/#/new")
    page.wait_for_selector("#read-only")
    assert page.locator("#preview-button, #confirm-button, #campaign").count() == 0
    _shots(page, "read-only")
    context.close()
    assert console.errors == []
