"""The web manager in a real browser (Debian's chromium, driven by Playwright) against the real stack.

Upload a generated XLSX, check the preview against the API, start, watch progress reach 100 %
while pausing and resuming, download the report and compare it with the simulator's record,
switch to English, and no console errors on the way. Screenshots of the main pages at 1280×800 and
390 px wide go to ``$ULAK_SCREENSHOTS`` (default ``build/screenshots``) for people to look at.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import xlsxwriter

from tests.chromium import chromium_path, launch_args
from tests.helpers import ApiProcess, SimProcess, wait_for
from tests.integration.stack import Stack, post_job, running_stack, wait_state
from ulak.redis_server import free_port

playwright_sync = pytest.importorskip("playwright.sync_api")

PREFIX = "905327"
SHOTS = Path(os.environ.get("ULAK_SCREENSHOTS") or Path(__file__).parents[2] / "build" / "screenshots")


@pytest.fixture(scope="module")
def redirect_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def web_stack(
    ray_session: Any, tmp_path_factory: pytest.TempPathFactory, redirect_port: int
) -> Iterator[Stack]:
    """The stack at 60 parts/s (slow enough to pause midway), its links served on *redirect_port*."""
    workdir = tmp_path_factory.mktemp("web")
    sim = SimProcess(workdir, "--account", "test:secret", "--seed", "5", "--dlr-delay", "0.05:0.2")
    links = {"port": redirect_port, "scanner_seconds": 0}
    with running_stack(workdir, sim, tps=60, name="web", links=links) as running:
        yield running


@pytest.fixture(scope="module")
def redirect(web_stack: Stack, redirect_port: int) -> Iterator[ApiProcess]:
    """The stack's redirect service (clicks on its links)."""
    stack = web_stack
    process = ApiProcess(
        stack.workdir, stack.config_dir, stack.env, port=redirect_port, module="api.redirect"
    )
    yield process
    process.stop()


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
    _open(page, "s-schedule")
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
    page.locator("#job-actions", has_text="sürdür").wait_for(timeout=10_000)
    assert page.inner_text("#job-actions") == "Bu durumda yapılabilir: sürdür, iptal et"
    with stack.client() as http:
        assert http.get(f"/v1/jobs/{job_id}").json()["state"] == "paused"
    _shots(page, "job-paused")
    page.click("#resume")
    # While it sends: the time left, and this job's rate per operator adding up to its rate.
    page.locator("#eta", has_text=re.compile(r"^[0-9.]+ s$")).wait_for(timeout=30_000)
    with stack.client() as http:

        def rates() -> dict[str, Any] | None:
            found = http.get(f"/v1/jobs/{job_id}").json()["rates"]
            return found if found["operators"] else None

        moving = wait_for(rates, timeout=30, what="the job's rate per operator")
    assert set(moving["operators"]) == {"tcell"}, moving
    assert sum(moving["operators"].values()) == pytest.approx(moving["parts_per_second"], abs=0.2)
    page.wait_for_selector("#job-state[data-state='done']", timeout=120_000)
    assert page.inner_text("#eta") == "—"
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


AB_PREFIX = "905328"
PHONE = "Mozilla/5.0 (Linux; Android 14) Chrome/120 Mobile Safari/537.36"
SCORES = ["10", "9", "10", "8", "7", "6", "3", "0", "9", "10", "5", "8"]


def _people(path: Path, prefix: str, rows: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["telefon", "ad"])
        for i in range(rows):
            w.writerow([f"+{prefix}{i:06d}", f"Ada {i}"])
    return path


def _open(page: Any, section: str) -> None:
    page.click(f"#{section} > summary")
    page.wait_for_selector(f"#{section}[open]")


def test_an_ab_test_with_a_holdout_and_a_nps_survey_set_up_in_the_pages(
    web_stack: Stack, redirect: ApiProcess, browser: Any, tmp_path: Path
) -> None:
    stack = web_stack
    upload = _people(tmp_path / "ab.csv", AB_PREFIX, 200)
    context, page, console = _signed_in(browser, stack, stack.token)
    page.click("#lang")  # English
    page.click("a[href='#/new']")
    page.set_input_files("#f-file", str(upload))
    page.fill("#f-template", "Merhaba {ad}: {link}")
    page.fill("#f-name", "web ab")
    page.fill("#f-sender", "ULAK")
    _open(page, "s-link")
    page.fill("#f-link_url", "https://shop.example/web")
    page.fill("#f-utm", "utm_source=sms&utm_campaign=web")
    _open(page, "s-ab")
    page.click("#add-variant")
    page.click("#add-variant")
    variants = page.locator("#variants fieldset.variant")
    variants.nth(0).locator(".v-template").fill("A: {ad}, bizi 0-10 puanlayın: {link}")
    variants.nth(1).locator(".v-template").fill("B: {nope} {link}")  # an unknown column
    variants.nth(1).locator(".v-sender").fill("ULAKB")
    page.fill("#f-holdout", "10")
    _open(page, "s-survey")
    page.select_option("#f-survey", "nps")
    page.fill("#f-survey_reply_to", "5555")
    page.fill("#f-followup-detractor", "Üzgünüz. Neyi düzeltelim?")

    # The API's refusal shows next to the field it names: the second variant's text.
    page.click("#preview-button")
    error = page.wait_for_selector("#variants fieldset.variant:nth-child(2) .field-error", timeout=30_000)
    assert "nope" in error.inner_text()
    assert variants.nth(1).locator(".v-template").get_attribute("aria-invalid") == "true"
    variants.nth(1).locator(".v-template").fill("B: {ad}, görüşünüz bizim için önemli: {link}")
    page.click("#preview-button")
    card = page.wait_for_selector("#preview-card", timeout=60_000)
    assert page.locator(".field-error").count() == 0
    with stack.client() as http:
        preview = http.get(f"/v1/jobs/{card.get_attribute('data-job')}").json()
    cells = [r.split("\t") for r in page.locator("#pv-variants tbody tr").all_inner_texts()]
    shown = {row[0]: (_digits(row[1]), _digits(row[2])) for row in cells}
    planned = {
        name: (sum(o["messages"] for o in ops.values()), sum(o["parts"] for o in ops.values()))
        for name, ops in preview["variants"].items()
    }
    assert shown == planned and set(shown) == {"A", "B"}, (shown, planned)
    held = preview["counts"]["held_out"]
    assert _digits(page.inner_text("#pv-held-out")) == held > 0
    assert sum(m for m, _ in shown.values()) + held == 200
    _shots(page, "new-ab")

    page.click("#confirm-button")
    page.wait_for_url(re.compile(r"#/job/"))
    job_id = page.url.rsplit("/", 1)[1]
    with stack.client() as http:
        view = wait_state(http, job_id, "done", timeout=120)
        options = view["options"]
        assert options["variants"] == [
            {"name": "A", "template": "A: {ad}, bizi 0-10 puanlayın: {link}", "weight": 1.0},
            {
                "name": "B",
                "template": "B: {ad}, görüşünüz bizim için önemli: {link}",
                "sender": "ULAKB",
                "weight": 1.0,
            },
        ]
        assert options["holdout"] == 0.1 and options["sender"] == "ULAK" and options["name"] == "web ab"
        assert options["survey"] == {
            "kind": "nps",
            "reply_to": "5555",
            "window_hours": 72.0,
            "followups": {"detractor": "Üzgünüz. Neyi düzeltelim?"},
        }
        assert options["link_url"] == "https://shop.example/web"
        assert options["utm"] == {"utm_source": "sms", "utm_campaign": "web"}
        wait_for(
            lambda: http.get(f"/v1/jobs/{job_id}").json()["receipts"]["awaiting"] == 0,
            timeout=30,
            what="every receipt",
        )
        report = list(csv.DictReader(io.StringIO(http.get(f"/v1/jobs/{job_id}/report").text)))
    # People click (A's more than B's) and answer the survey.
    delivered = [r for r in report if r["receipt"] == "delivered"]
    by = {v: [r for r in delivered if r["variant"] == v] for v in ("A", "B")}
    clickers = by["A"][: len(by["A"]) // 2] + by["B"][: len(by["B"]) // 5]
    with httpx.Client(base_url=redirect.url) as web:
        for r in clickers:
            assert web.get(f"/{r['link_code']}", headers={"User-Agent": PHONE}).status_code == 302
    for r, score in zip(delivered, SCORES, strict=False):
        stack.sim.control(op="mo", system_id="test", source=r["msisdn"].lstrip("+"), dest="5555", text=score)
    with stack.client() as http:
        wait_for(
            lambda: http.get(f"/v1/jobs/{job_id}/summary").json()["survey"]["responses"] == len(SCORES),
            timeout=60,
            what="every answer counted",
        )
        summary = http.get(f"/v1/jobs/{job_id}/summary").json()
    assert summary["clicks"]["unique"] == len(clickers)

    page.goto(f"{stack.api.url}/ui/#/job/{job_id}")
    page.reload()  # the summary as it is now
    page.wait_for_selector("#nps-chart", timeout=30_000)
    page.wait_for_selector("#ab svg.ab-chart")
    page.wait_for_selector("#curves [data-curve]")
    # The NPS chart: one bar a score, with the summary's counts.
    bars = {
        int(g.get_attribute("data-score")): int(g.get_attribute("data-count"))
        for g in page.locator("#nps-chart g[data-score]").element_handles()
    }
    assert bars == {int(k): v for k, v in summary["survey"]["nps"]["distribution"].items()}
    assert page.inner_text("#nps") == str(round(summary["survey"]["nps"]["nps"])) or float(
        page.inner_text("#nps").replace(",", "")
    ) == pytest.approx(summary["survey"]["nps"]["nps"], abs=0.01)
    # The variants: the table and each one's click rate with its interval, as the summary has them.
    rows = {r.split("\t")[0]: r.split("\t") for r in page.locator("#ab tbody tr").all_inner_texts()}
    for name in ("A", "B"):
        assert _digits(rows[name][1]) == summary["variants"][name]["recipients"]
        assert _digits(rows[name][2]) == summary["variants"][name]["delivered"]
    drawn = page.locator("#ab svg.ab-chart").first
    for name, interval in summary["ab_test"]["clicks"]["intervals_95"].items():
        g = drawn.locator(f"g[data-variant='{name}']")
        assert float(g.get_attribute("data-rate")) == interval["rate"]
        assert float(g.get_attribute("data-low")) == interval["low"]
        assert float(g.get_attribute("data-high")) == interval["high"]
    # The curves: each one's total is the summary's series summed.
    points = summary["series"]["points"]
    for field in ("sent", "delivered", "unique_clicks", "conversions"):
        total = _digits(page.inner_text(f"#curves [data-curve='{field}']"))
        assert total == sum(p[field] for p in points), field
    assert sum(p["sent"] for p in points) == summary["sent"]
    assert sum(p["unique_clicks"] for p in points) == len(clickers)
    _shots(page, "job-ab")
    context.close()
    refused = "status of 422"  # the browser logs the refused preview's response: it was meant
    assert [e for e in console.errors if refused not in e] == [] and len(console.errors) == 1


def test_the_comparison_page_shows_campaigns_with_their_summaries_and_no_previews(
    web_stack: Stack, browser: Any, tmp_path: Path
) -> None:
    stack = web_stack
    made = []
    with stack.client() as http:
        for i in range(3):
            path = _people(tmp_path / f"c{i}.csv", f"90532{4 - i}", 10 + 5 * i)
            created = post_job(http, path, template="Merhaba {ad}", name=f"compare {i}")
            assert created.status_code == 202, created.text
            made.append(created.json()["id"])
        preview = post_job(http, path, template="Merhaba {ad}", name="compare preview", dry_run=True)
        for job_id in [*made, preview.json()["id"]]:
            wait_state(http, job_id, "done", timeout=120)
        for job_id in made:
            wait_for(
                lambda job_id=job_id: http.get(f"/v1/jobs/{job_id}").json()["receipts"]["awaiting"] == 0,
                timeout=30,
                what="every receipt",
            )
        summaries = {j: http.get(f"/v1/jobs/{j}/summary").json() for j in made}
        compared = {c["id"]: c for c in http.get("/v1/campaigns", params={"limit": 10}).json()["campaigns"]}
        for job_id, summary in summaries.items():
            c = compared[job_id]
            assert c["final"] is True
            assert (c["sent"], c["delivered"]) == (summary["sent"], summary["delivered"])
            assert (c["cost"], c["roi"]) == (summary["cost"], summary["roi"])
            assert c["operators"]["tcell"]["sent"] == summary["operators"]["tcell"]["sent"]
        listed = http.get("/v1/jobs", params={"kind": "previews"}).json()["jobs"]
        assert preview.json()["id"] in {j["id"] for j in listed}
        campaigns = http.get("/v1/jobs", params={"kind": "campaigns"}).json()["jobs"]
        assert preview.json()["id"] not in {j["id"] for j in campaigns}
    context, page, console = _signed_in(browser, stack, stack.token)
    page.goto(f"{stack.api.url}/ui/#/compare")
    page.select_option("#c-count", "5")
    try:
        for job_id in made:
            page.wait_for_selector(f"#compare a[data-campaign='{job_id}']", timeout=30_000)
    except Exception as exc:  # say what the page shows instead
        raise AssertionError(f"{page.inner_text('main')[:800]} {console.errors}") from exc
    assert page.locator("#compare a", has_text="compare preview").count() == 0
    automatic = page.locator(
        "#compare a", has_text=re.compile("^(keyword answers|follow-ups of|opt-out conf)")
    )
    assert automatic.count() == 0  # Ulak's own messages are not campaigns
    for job_id, summary in summaries.items():
        row = page.locator("#compare tbody tr", has=page.locator(f"a[data-campaign='{job_id}']"))
        cells = row.inner_text().split("\t")
        assert _digits(cells[4]) == summary["sent"]
        rate = summary["delivery_rate"]
        assert cells[5].strip() == (f"{rate * 100:.1f}".rstrip("0").rstrip(".") + " %"), (cells, rate)
    assert page.locator("[data-trend] svg.chart").count() == 3
    # The campaigns list keeps previews apart.
    page.goto(f"{stack.api.url}/ui/#/jobs")
    page.wait_for_selector("#previews")
    assert page.locator("#campaigns a", has_text="compare preview").count() == 0
    assert page.locator("#previews a", has_text="compare preview").count() == 1
    _shots(page, "jobs")
    page.goto(f"{stack.api.url}/ui/#/compare")
    page.wait_for_selector("[data-trend] svg.chart")
    _shots(page, "compare")
    context.close()
    assert console.errors == []


PAGES = ("jobs", "compare", "new", "job", "operators", "lists", "replies")
SERIOUS = ("serious", "critical")


def _violations(page: Any, script: str) -> list[str]:
    """axe-core's serious and critical violations of the page as it is (WCAG 2.1 A/AA and best practice)."""
    page.evaluate(script)
    found = page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', "
        "'best-practice']}, resultTypes: ['violations']})"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + "; ".join(f"{n['target']} {n.get('failureSummary', '')[:160]}" for n in v["nodes"][:3])
        for v in found["violations"]
        if v["impact"] in SERIOUS
    ]


def _show(page: Any, stack: Stack, name: str, job_id: str) -> None:
    """Open page *name* as a user would see it, its sections open and its data drawn."""
    page.goto(f"{stack.api.url}/ui/#/{'job/' + job_id if name == 'job' else name}")
    ready = {
        "jobs": "#campaigns",
        "compare": "#compare table",
        "new": "#campaign",
        "job": "#funnel",
        "operators": "[data-operator] table",
        "lists": "#optout-total",
        "replies": "#replies",
    }[name]
    page.wait_for_selector(ready, timeout=30_000)
    if name == "new":
        for section in page.locator("#campaign details").element_handles():
            section.evaluate("d => { d.open = true; }")
        page.click("#add-variant")
        page.select_option("#f-survey", "nps")


_CONTROLS = (
    "() => [...document.querySelectorAll('header a[href], header button, main a[href], main button, "
    "main input, main select, main textarea, main summary, main [tabindex]')].filter((e) => !e.disabled "
    "&& !e.hidden && e.offsetParent !== null && e.tabIndex >= 0)"
)


def _tab_through(page: Any) -> list[str]:
    """The page's visible controls that Tab, pressed from the first, never reaches (their HTML)."""
    count = page.evaluate(f"({_CONTROLS})().length")
    page.evaluate(f"({_CONTROLS})()[0].focus()")
    reached = set()
    for _ in range(count * 2):
        reached.add(page.evaluate(f"({_CONTROLS})().indexOf(document.activeElement)"))
        page.keyboard.press("Tab")
    missing = sorted(set(range(count)) - reached)
    return [page.evaluate(f"({_CONTROLS})()[{i}].outerHTML.slice(0, 120)") for i in missing]


def test_every_page_is_accessible_and_every_control_reachable_by_keyboard(
    web_stack: Stack, browser: Any, tmp_path: Path
) -> None:
    axe = pytest.importorskip("axe_playwright_python")
    script = (Path(axe.__file__).parent / "axe.min.js").read_text(encoding="utf-8")
    stack = web_stack
    with stack.client() as http:
        created = post_job(
            http, _people(tmp_path / "a11y.csv", "905321", 20), template="Merhaba {ad}", name="a11y"
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        wait_state(http, job_id, "done", timeout=120)
    problems: dict[str, list[str]] = {}
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    console = Console(page)
    page.goto(f"{stack.api.url}/ui/")
    page.wait_for_selector("#key")
    problems["signin"] = _violations(page, script)
    context.close()
    context, page, console = _signed_in(browser, stack, stack.token)
    for width, height in ((1280, 800), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        for name in PAGES:
            _show(page, stack, name, job_id)
            found = _violations(page, script)
            if found:
                problems[f"{name} at {width} px"] = found
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "axe.json").write_text(json.dumps(problems, indent=1, ensure_ascii=False), encoding="utf-8")
    assert not {k: v for k, v in problems.items() if v}, problems

    # Every control of every page (the form's sections open) is reached with Tab alone.
    page.set_viewport_size({"width": 1280, "height": 800})
    unreached = {}
    for name in PAGES:
        _show(page, stack, name, job_id)
        missing = _tab_through(page)
        if missing:
            unreached[name] = missing
    assert not unreached, unreached
    context.close()
    assert console.errors == []
