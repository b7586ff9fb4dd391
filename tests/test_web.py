"""The web app (musicvid_core/api/web/) in a real browser: Debian's headless Chromium driven by
Playwright's Python API (``executable_path``: no browser download) against a real ``musicvid serve``
on loopback with generated videos. ``pytest -k browser`` selects the browser tests; they skip with
the reason when Chromium or Playwright is missing. The page's own strict CSP stays on throughout:
the tests read the page with ``evaluate`` (DevTools protocol), never with injected page scripts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import pytest
import requests
from apihelpers import Live

from musicvid_core.api import webapp
from musicvid_core.domain.job import Job, JobError, Status
from musicvid_core.settings import Settings
from musicvid_core.workflow import submit as service

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]
MAX_BYTES = 3_000_000
PHONE = {"width": 375, "height": 740}


# --- without a browser: what the server does for the page ------------------------------------
@pytest.fixture(scope="module")
def live(tmp_path_factory):
    home = tmp_path_factory.mktemp("web-home")
    server = Live(Settings(home=home, user="tester", retry_time_scale=0, workers=2, max_input_bytes=MAX_BYTES,
                           rate_limit_per_s=0))
    yield server
    server.close()


def test_web_files_are_served_with_a_strict_policy(live):
    r = requests.get(live.url + "/", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/app/"
    page = requests.get(live.url + "/app/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff" and page.headers["X-Frame-Options"] == "DENY"
    assert "Access-Control-Allow-Origin" not in page.headers
    for name in re.findall(r'(?:src|href)="([a-z0-9_.-]+\.(?:js|css|svg))"', page.text):
        asset = requests.get(f"{live.url}/app/{name}")
        assert asset.status_code == 200 and asset.headers["X-Content-Type-Options"] == "nosniff", name
    assert requests.get(live.url + "/app/app.js").headers["Content-Type"].startswith("text/javascript")
    for bad in ("../core.py", "..%2Fcore.py", "web/app.js", "APP.JS", "x.py", "%2e%2e/auth.py"):
        assert requests.get(f"{live.url}/app/{bad}").status_code == 404, bad
    assert requests.get(live.url + "/app/config.json").json() == {
        "api": "", "max_bytes": MAX_BYTES, "auth": {"kind": "local", "dev_sign_in": True, "default_user": "tester"}}


def test_dev_sign_in_is_for_the_servers_own_page_on_loopback_only(live, tmp_path):
    url = live.url + webapp.SIGN_IN_PATH
    ok = requests.post(url, json={"user": "alice"}, headers={"Origin": live.url})
    assert ok.status_code == 200 and "Access-Control-Allow-Origin" not in ok.headers
    jobs = requests.get(live.url + "/jobs", headers={"Authorization": f"Bearer {ok.json()['token']}"})
    assert jobs.status_code == 200
    refused = [
        requests.post(url, json={"user": "alice"}, headers={"Origin": "http://localhost:3000"}),  # another site's page
        requests.post(url, json={"user": "alice"}, headers={"Origin": "https://evil.example"}),
        requests.post(url, json={"user": "alice"}, headers={"Host": "evil.example"}),  # DNS rebinding
        requests.post(url, json={"user": "alice"}, headers={"Sec-Fetch-Site": "cross-site"}),
    ]
    assert [r.status_code for r in refused] == [401] * 4
    for body in ({"user": "a b"}, {"user": "alice", "admin": True}, {"name": "alice"}):
        r = requests.post(url, json=body)
        assert r.status_code == 400 and r.json()["error"] == "bad_input", body
    # Bound to another interface: no dev sign-in at all, and the page is told so.
    from musicvid_core.api.server import LocalApp

    app = LocalApp(live.app.services, "http://192.0.2.1:8000", launcher=live.app.launcher, bound_loopback=False)
    assert app.dev_sign_in is False
    with pytest.raises(Exception) as err:
        webapp.check_sign_in(offered=app.dev_sign_in, host_header="127.0.0.1:8000", origin=None,
                             own_origin="http://127.0.0.1:8000", fetch_site=None)
    assert type(err.value).__name__ == "NotFound"


def test_downloads_play_in_a_browser():
    assert webapp.MEDIA_TYPES[".mp4"] == "video/mp4" and webapp.MEDIA_TYPES[".wav"] == "audio/wav"
    assert webapp.content_security_policy("https://api.example", "https://api.example") == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "media-src 'self' blob: https://api.example; connect-src 'self' https://api.example; form-action 'none'; "
        "base-uri 'none'; object-src 'none'; frame-ancestors 'none'")
    with pytest.raises(Exception, match="https"):
        webapp.cognito_config(api="http://api", domain="https://auth", client_id="c", max_bytes=1)


def test_a_body_cut_off_midway_stores_nothing(live):
    import socket

    form = requests.post(live.url + "/uploads", json={"content_type": "video/mp4"}, headers=live.headers("gina")).json()
    boundary = "b0undary"
    head = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                   for k, v in form["upload"]["fields"].items())
    head += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="v.mp4"\r\n' \
            "Content-Type: video/mp4\r\n\r\n"
    port = int(live.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"POST /_local/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/form-data; "
                     f"boundary={boundary}\r\nContent-Length: 1000000\r\n\r\n{head}".encode() + b"x" * 200_000)
    time.sleep(0.5)
    assert live.app.services.objects.list("uploads/gina/") == []


# --- the browser ---------------------------------------------------------------------------------
def _playwright():
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("browser tests need Debian's chromium (apt-get install chromium; `make system-deps`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need the playwright package (the [dev] extra)")
    return sync_playwright


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _playwright()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
                              args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, live):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("console", lambda m: problems.append(m.text) if m.type == "error" and "Content Security" in m.text else None)
    pg.problems = problems
    pg.set_default_timeout(20_000)
    yield pg
    context.close()
    assert not problems, problems  # no script error and no CSP violation on any page


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """3 s, two scenes (a cut at 1.5 s), a quiet tone: about 0.5 MB."""
    from musicvid_core.lab.samples import make_video

    return make_video(tmp_path_factory.mktemp("web-media") / "clip.mp4", (1.5, 1.5), audio="tone").path


def _shot(pg, name):
    """With MUSICVID_WEB_SCREENSHOTS=DIR, a screenshot of this step (how docs/web/*.jpg are made:
    MUSICVID_WEB_SCREENSHOTS=docs/web pytest -k browser)."""
    where = os.environ.get("MUSICVID_WEB_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(Path(where) / f"{name}.jpg"), type="jpeg", quality=70, full_page=True)


def _sign_in(pg, live, user="alice"):
    pg.goto(live.url + "/")
    pg.get_by_label("Your name on this machine").fill(user)
    pg.get_by_role("button", name="Sign in").click()
    pg.get_by_role("heading", name="New video", level=1).wait_for()


def _state(pg, selector, prop):
    return pg.evaluate(f"document.querySelector({selector!r}).{prop}")


def _wait_status(pg, text, timeout=60_000):
    from playwright.sync_api import expect

    expect(pg.locator("#job-status")).to_have_text(text, timeout=timeout)


def _wait_attempt(live, job_id, attempt, timeout=60):
    """Until the page has started ``attempt`` of the job and the server has finished it."""
    deadline = time.monotonic() + timeout
    while True:
        job = live.app.services.jobs.get(job_id)
        if job.attempt >= attempt and job.status in (Status.COMPLETED, Status.FAILED):
            return job
        assert time.monotonic() < deadline, f"attempt {attempt} never started or finished"
        time.sleep(0.05)


def _throttle(pg, bytes_per_s=None, offline=False):
    cdp = pg.context.new_cdp_session(pg)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": offline, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": bytes_per_s or -1})
    return cdp


@pytest.mark.slow
def test_browser_upload_watch_play_reroll_regenerate(page, live, clip):
    from playwright.sync_api import expect

    _sign_in(page, live)
    page.set_input_files("#file", str(clip))
    expect(page.locator("#picked-duration")).to_have_text("3.0 s")
    expect(page.locator("#picked-dims")).to_have_text("320 × 180")
    expect(page.locator("#picked-size")).to_have_text(re.compile(r"\d+ KB"))
    expect(page.locator("#poster")).to_have_attribute("src", re.compile("^blob:"))
    page.get_by_role("button", name="warm acoustic, slow build, big finish").click()
    assert page.locator("#prompt").input_value() == "warm acoustic, slow build, big finish"
    page.get_by_label("Quick preview first").check()
    page.get_by_text("Advanced mix controls").click()
    page.get_by_label("Hits: moments").fill("2.2")
    page.get_by_label("Keep the stems").check()
    _shot(page, "1-new-video")

    _throttle(page, bytes_per_s=400_000)  # ~1.3 s of upload: progress events to see
    page.get_by_role("button", name="Score my video").click()
    seen = set()
    while not page.url.split("#")[-1].startswith("/jobs/"):
        if page.locator("#upload").is_visible():
            seen.add(int(page.evaluate("document.getElementById('upload-progress').value")))
        time.sleep(0.05)
    assert len({v for v in seen if 0 < v < 100}) >= 2, seen  # the bar moved through the upload
    _throttle(page)

    job_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#stages li[aria-current=step]")).to_have_count(1)
    _shot(page, "2-progress")
    _wait_status(page, "Done")
    expect(page.locator("#result-kind")).to_contain_text("quick preview")
    # The timeline: one segment, the cut at 1.5 s, the hit asked for.
    expect(page.locator("#timeline .seg")).to_have_count(1)
    expect(page.locator("#timeline .cut")).to_have_count(1)
    expect(page.locator("#timeline .hit")).to_have_count(1)
    expect(page.locator("#timeline-text")).to_contain_text("scene cuts at 1.5 s")
    expect(page.locator("#segments tr")).to_have_count(1)
    expect(page.locator("#segments")).to_contain_text("bpm")
    _shot(page, "3-result")
    # Downloads: the video and three stems, all fetchable.
    links = page.locator("#downloads a")
    expect(links).to_have_count(4)
    for i in range(4):
        assert requests.get(links.nth(i).get_attribute("href")).status_code == 200

    # A/B: the original sound follows the scored video; the switch swaps which one is heard.
    expect(page.locator("#ab")).to_be_visible()
    page.evaluate("document.getElementById('scored').currentTime = 1.2")
    time.sleep(0.3)
    assert abs(_state(page, "#original", "currentTime") - 1.2) < 0.05
    page.get_by_label("Original sound", exact=True).check()
    assert _state(page, "#scored", "muted") is True and _state(page, "#original", "muted") is False
    page.get_by_role("button", name="Play segment 1").click()  # a user gesture: both play, in sync
    time.sleep(0.8)
    assert _state(page, "#scored", "paused") is False and _state(page, "#original", "paused") is False
    drift = page.evaluate("Math.abs(document.getElementById('scored').currentTime"
                          " - document.getElementById('original').currentTime)")
    assert drift < 0.3, drift
    page.get_by_label("With the new music", exact=True).check()
    assert _state(page, "#scored", "muted") is False and _state(page, "#original", "muted") is True
    page.evaluate("document.getElementById('scored').pause()")

    # Re-roll the one segment: the prompt history stays as it was.
    first_url = live.app.services.jobs.get(job_id).final_url
    page.get_by_role("button", name=re.compile("Re-roll segment 1")).click()
    _wait_attempt(live, job_id, 2)
    _wait_status(page, "Done")
    expect(page.locator("#again-error")).to_be_hidden()
    job = live.app.services.jobs.get(job_id)
    assert job.operation_type.value == "REGENERATE" and job.reroll.segment == 0 and job.final_url != first_url
    expect(page.locator("#prompt-history li")).to_have_count(1)

    # The preview, rendered in full.
    page.get_by_role("button", name="Render in full quality").click()
    _wait_attempt(live, job_id, 3)
    _wait_status(page, "Done")
    expect(page.locator("#result-kind")).to_have_text("Full quality.")
    assert live.app.services.jobs.get(job_id).options.preview is False

    # Regenerate with a new prompt: the history shows both.
    page.get_by_label("New prompt").fill("dark ambient, slow")
    page.get_by_role("button", name="Score it again").click()
    _wait_attempt(live, job_id, 4)
    _wait_status(page, "Done")
    expect(page.locator("#prompt-history li")).to_have_text(["warm acoustic, slow build, big finish",
                                                             "dark ambient, slow"])
    expect(page.locator("#job-prompt")).to_have_text("“dark ambient, slow”")


@pytest.mark.slow
def test_browser_bad_input_gets_a_clear_message(page, live, tmp_path):
    from playwright.sync_api import expect

    _sign_in(page, live, "carol")
    error = page.locator("#file-error")
    (tmp_path / "notes.txt").write_text("hello")
    page.set_input_files("#file", str(tmp_path / "notes.txt"))
    expect(error).to_contain_text("is not a video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    page.set_input_files("#file", str(tmp_path / "empty.mp4"))
    expect(error).to_contain_text("is empty")
    (tmp_path / "big.mp4").write_bytes(b"\0" * (MAX_BYTES + 1))
    page.set_input_files("#file", str(tmp_path / "big.mp4"))
    expect(error).to_contain_text("the limit is 2.9 MB")
    page.locator("#prompt").fill("calm")
    page.get_by_role("button", name="Score my video").click()
    expect(page.locator("#file-error")).to_be_visible()
    stored = live.app.services.objects.list("uploads/carol/")

    # Cancel mid-upload, then a network drop mid-upload: a message each, no job, nothing stored (the
    # upload is held in the browser, so nothing reaches the server; what a server does with half a
    # body is test_a_body_cut_off_midway_stores_nothing).
    (tmp_path / "fake.mp4").write_bytes(b"not a video " * 60_000)  # ~0.7 MB, passes the page's checks
    page.set_input_files("#file", str(tmp_path / "fake.mp4"))
    expect(error).to_be_hidden()
    held = []
    page.route("**/_local/upload", lambda route: held.append(route))  # the upload hangs in flight
    page.get_by_role("button", name="Score my video").click()
    page.get_by_role("button", name="Cancel upload").click()
    expect(page.locator("#new-error")).to_have_text("Upload cancelled.")
    assert held
    # Abort the held request before unrouting: a route still pending at unroute may be continued,
    # and the upload would then reach the server after all (seen once under load).
    for route in held:
        try:
            route.abort()
        except Exception:  # the browser already dropped it (the page aborted the upload)
            pass
    page.unroute("**/_local/upload")
    page.route("**/_local/upload", lambda route: route.abort("connectionreset"))  # the network drops
    page.get_by_role("button", name="Score my video").click()
    expect(page.locator("#new-error")).to_contain_text("cut off")
    page.unroute("**/_local/upload")
    assert live.app.services.jobs.list_for_user("carol")[0] == []
    assert live.app.services.objects.list("uploads/carol/") == stored == []

    # Not a video after all: the job fails, and the page says why in plain words.
    page.get_by_role("button", name="Score my video").click()
    page.wait_for_url(re.compile("#/jobs/"))
    _wait_status(page, "Failed")
    expect(page.locator("#failed-words")).to_have_text(re.compile("could not be read as a video"))
    expect(page.locator("#failed-tech")).to_contain_text("UnsupportedMedia at analyze")
    _shot(page, "5-failed")
    expect(page.get_by_role("button", name="Try the same prompt again")).to_be_visible()

    # An expired or forged session: back to sign-in with a message, nothing else.
    page.evaluate("sessionStorage.setItem('musicvid.token', sessionStorage.getItem('musicvid.token').slice(0, -4)"
                  " + 'AAAA')")
    page.goto(live.url + "/app/#/jobs")
    expect(page.locator("#page-error")).to_contain_text("sign in again")
    expect(page.get_by_role("heading", name="Put fitting music under your video")).to_be_visible()


def _add_jobs(live, user, n, **fields):
    made = []
    for i in range(n):
        made.append(live.app.services.jobs.create(Job(user_id=user, s3_url=f"local://uploads/{user}/x.mp4",
                                                      prompts=[f"{user} prompt {i}"], **fields)))
        time.sleep(0.002)  # distinct created_at: newest first is well defined
    return made


@pytest.mark.slow
def test_browser_history_pages_newest_first_and_refuses_others_jobs(page, live):
    from playwright.sync_api import expect

    mine = _add_jobs(live, "dave", 11, status=Status.COMPLETED, summary="three segments of lo-fi")
    failed = _add_jobs(live, "dave", 1, status=Status.FAILED,
                       error=JobError(type="UnsupportedMedia", message="invalid data", stage="analyze"))
    theirs = _add_jobs(live, "erin", 1)[0]
    _sign_in(page, live, "dave")
    page.get_by_role("link", name="Your videos").click()
    items = page.locator("#jobs li")
    expect(items).to_have_count(10)
    expect(items.first).to_contain_text("dave prompt 0")  # the failed one, the newest
    expect(items.first).to_contain_text("could not be read as a video")
    expect(items.nth(1)).to_contain_text("dave prompt 10")
    expect(items.nth(1)).to_contain_text("three segments of lo-fi")
    _shot(page, "4-history")
    older = page.get_by_role("button", name="Older")
    older.click()
    expect(items).to_have_count(2)
    expect(items).to_contain_text(["dave prompt 1", "dave prompt 0"])
    expect(older).to_be_disabled()
    page.get_by_role("button", name="Newer").click()
    expect(items).to_have_count(10)
    assert "erin" not in page.locator("#jobs").inner_text()
    assert len(mine) + len(failed) == 12
    page.goto(f"{live.url}/app/#/jobs/{theirs.job_id}")
    expect(page.locator("#page-error")).to_have_text("There is no such video, or it is not yours.")
    page.goto(f"{live.url}/app/#/jobs/{uuid.uuid4()}")
    expect(page.locator("#page-error")).to_have_text("There is no such video, or it is not yours.")


@pytest.fixture(scope="module")
def done_job(live, clip):
    services = live.app.services
    job = service.submit_new(services, service.upload_file(services, clip, "frank"), "calm piano", "frank",
                             options={"hits": [2.0]})
    job = service.run(services, job)
    assert job.status == Status.COMPLETED, job.error
    return job


def _focused(pg):
    return pg.evaluate("(() => { const a = document.activeElement;"
                       " return [a.tagName, a.id, a.textContent.trim().slice(0, 40),"
                       " getComputedStyle(a).outlineStyle]; })()")


@pytest.mark.slow
def test_browser_keyboard_only(page, live, clip, done_job):
    from playwright.sync_api import expect

    kb = page.keyboard
    # Listen for file choosers before anything happens: Playwright turns the interception on with a
    # fire-and-forget message, so arming it just before the key press races the press on a loaded machine
    # (the browser then opens its own headless dialog and no event ever comes).
    choosers = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))
    page.goto(live.url + "/")
    page.get_by_role("button", name="Sign in").wait_for()  # config.json read: the form is there
    kb.press("Tab")
    assert _focused(page)[:3] == ["A", "", "Skip to content"]
    for _ in range(8):
        kb.press("Tab")
        if _focused(page)[1] == "dev-user":
            break
    tag, ident, _, outline = _focused(page)
    assert ident == "dev-user" and outline != "none"  # focus is visible
    kb.press("Control+a")
    kb.type("frank")
    kb.press("Enter")
    page.get_by_role("heading", name="New video", level=1).wait_for()
    assert _focused(page)[1] == "new-title"  # focus moves to the new page's heading

    # The file, by keyboard: the chooser opens from the focused input.
    for _ in range(10):
        kb.press("Tab")
        if _focused(page)[1] == "file":
            break
    assert _focused(page)[1] == "file"
    kb.press("Space")
    for _ in range(200):
        if choosers:
            break
        page.wait_for_timeout(100)
    assert len(choosers) == 1 and choosers[0].element.get_attribute("id") == "file"
    choosers[0].set_files(str(clip))
    expect(page.locator("#picked-duration")).to_have_text("3.0 s")
    for _ in range(10):  # to the first example chip, and take it with Enter
        kb.press("Tab")
        if _focused(page)[0] == "BUTTON":
            break
    kb.press("Enter")
    assert page.locator("#prompt").input_value()
    page.get_by_role("button", name="Score my video").focus()
    kb.press("Enter")
    page.wait_for_url(re.compile("#/jobs/"))
    _wait_status(page, "Done")

    # The result by keyboard: the A/B switch with arrow keys, re-roll reachable.
    page.goto(f"{live.url}/app/#/jobs/{done_job.job_id}")
    _wait_status(page, "Done")
    page.get_by_label("With the new music", exact=True).focus()
    kb.press("ArrowRight")
    assert page.get_by_label("Original sound", exact=True).is_checked() and _state(page, "#scored", "muted") is True
    reroll = page.get_by_role("button", name=re.compile("Re-roll segment 1"))
    for _ in range(40):
        kb.press("Tab")
        if _focused(page)[2] == "Re-roll":
            break
    assert _focused(page)[2] == "Re-roll" and reroll.is_enabled()


# Roles that make an element interactive, and the landmarks every page must have.
AUDIT = """(() => {
  const visible = (e) => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  const name = (e) => (e.getAttribute('aria-label') || '').trim()
    || (e.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean)
         .map((id) => (document.getElementById(id) || {}).textContent || '').join(' ').trim()
    || Array.from(e.labels || []).map((l) => l.textContent).join(' ').trim()
    || (['BUTTON', 'A', 'SUMMARY'].includes(e.tagName) ? e.textContent.trim() : '');
  const problems = [];
  for (const e of document.querySelectorAll('input, select, textarea, button, a[href], summary, video')) {
    if (visible(e) && e.type !== 'hidden' && !name(e)) problems.push('no accessible name: ' + e.outerHTML.slice(0, 80));
  }
  for (const e of document.querySelectorAll('img')) if (!e.hasAttribute('alt')) problems.push('img without alt');
  const ids = Array.from(document.querySelectorAll('[id]')).map((e) => e.id);
  for (const id of new Set(ids)) if (ids.filter((x) => x === id).length > 1) problems.push('duplicate id ' + id);
  for (const e of document.querySelectorAll('[aria-labelledby], [aria-describedby]')) {
    for (const attr of ['aria-labelledby', 'aria-describedby']) {
      for (const id of (e.getAttribute(attr) || '').split(/\\s+/).filter(Boolean)) {
        if (!document.getElementById(id)) problems.push(attr + ' names a missing id ' + id);
      }
    }
  }
  const count = (sel) => Array.from(document.querySelectorAll(sel)).filter(visible).length;
  if (count('main') !== 1) problems.push('not exactly one main');
  if (count('body > header') !== 1) problems.push('no banner');
  if (count('body > footer') !== 1) problems.push('no contentinfo');
  if (count('h1') !== 1) problems.push(count('h1') + ' h1 visible');
  for (const nav of document.querySelectorAll('nav')) if (visible(nav) && !name(nav)) problems.push('nav without a label');
  for (const s of document.querySelectorAll('section')) if (visible(s) && !name(s)) problems.push('section without a name');
  if (!document.documentElement.lang) problems.push('no lang');
  if (document.documentElement.scrollWidth > document.documentElement.clientWidth + 1) problems.push('scrolls sideways');
  return problems;
})()"""


@pytest.mark.slow
@pytest.mark.parametrize("viewport", [PHONE, {"width": 1280, "height": 900}], ids=["phone", "desktop"])
def test_browser_labels_landmarks_and_phone_layout(browser, live, done_job, viewport, tmp_path):
    from playwright.sync_api import expect

    context = browser.new_context(viewport=viewport, is_mobile=viewport is PHONE, has_touch=viewport is PHONE)
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        pg.goto(live.url + "/")
        pg.get_by_role("button", name="Sign in").wait_for()
        found = {"sign in": pg.evaluate(AUDIT)}
        _sign_in(pg, live, "frank")
        pg.get_by_text("Advanced mix controls").click()
        found["new job"] = pg.evaluate(AUDIT)
        pg.goto(f"{live.url}/app/#/jobs/{done_job.job_id}")
        expect(pg.locator("#result")).to_be_visible()
        expect(pg.locator("#timeline .hit")).to_have_count(1)
        found["result"] = pg.evaluate(AUDIT)
        _shot(pg, f"6-result-{'phone' if viewport is PHONE else 'desktop'}")
        pg.goto(f"{live.url}/app/#/jobs")
        expect(pg.locator("#jobs li").first).to_be_visible()
        found["history"] = pg.evaluate(AUDIT)
        assert found == {k: [] for k in found}
        if viewport is PHONE:  # tap targets big enough to hit with a finger
            pg.goto(f"{live.url}/app/#/new")
            small = pg.evaluate("Array.from(document.querySelectorAll('button')).filter((b) => b.offsetHeight"
                                " && b.offsetHeight < 32).map((b) => b.textContent)")
            assert small == []
    finally:
        context.close()
    assert errors == []


class FakeHostedUI:
    """Cognito's hosted UI as far as the page sees it: /oauth2/authorize answers with a code for the
    PKCE challenge, /oauth2/token gives an ID token only for the verifier that hashes to it."""

    def __init__(self, live, user):
        import base64
        import hashlib
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlencode, urlsplit

        ui = self
        self.asked, self.exchanged, self.token = [], [], live.token(user)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in [("Access-Control-Allow-Origin", live.url), *headers]:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                parts = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/logout":
                    return self._send(302, headers=[("Location", q["logout_uri"])])
                assert parts.path == "/oauth2/authorize", parts.path
                ui.asked.append(q)
                back = q["redirect_uri"] + "?" + urlencode({"code": "one-time-code", "state": q["state"]})
                self._send(302, headers=[("Location", back)])

            def do_POST(self):
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
                ui.exchanged.append(form)
                challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
                ok = (form.get("grant_type") == "authorization_code" and form.get("code") == "one-time-code"
                      and challenge.decode().rstrip("=") == ui.asked[-1]["code_challenge"]
                      and form.get("redirect_uri") == ui.asked[-1]["redirect_uri"])
                body = {"id_token": ui.token, "access_token": "x", "token_type": "Bearer"} if ok \
                    else {"error": "invalid_grant"}
                import json as _json

                self._send(200 if ok else 400, _json.dumps(body).encode(), [("Content-Type", "application/json")])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_browser_hosted_sign_in_with_pkce_keeps_tokens_out_of_urls(page, live):
    from playwright.sync_api import expect

    ui = FakeHostedUI(live, "hana")
    live.app.web_config = {"api": "", "max_bytes": MAX_BYTES,
                           "auth": {"kind": "cognito", "domain": ui.url, "client_id": "web-client",
                                    "scopes": ["openid", "email"]}}
    csp, live.app.web_csp = live.app.web_csp, webapp.content_security_policy(live.url, ui.url)
    urls = []
    page.on("request", lambda r: urls.append(r.url))
    try:
        page.goto(live.url + "/app/#/jobs")
        expect(page.locator("#dev-signin")).to_be_hidden()
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Your videos", level=1).wait_for()
        expect(page.locator("#who")).to_have_text("Signed in as hana")
        asked = ui.asked[0]
        assert asked["response_type"] == "code" and asked["client_id"] == "web-client"
        assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
        assert asked["scope"] == "openid email" and asked["redirect_uri"] == live.url + "/app/"
        assert len(ui.exchanged) == 1 and len(ui.exchanged[0]["code_verifier"]) >= 43
        assert "code=" not in page.url and "state=" not in page.url  # the one-time code left the address bar
        assert not any(ui.token in u for u in urls)  # the token never rode in a URL
        assert not any(ui.token[:40] in u for u in urls)

        # A forged answer (state not ours) is refused, and nothing is exchanged.
        page.evaluate("sessionStorage.clear()")
        page.goto(live.url + "/app/?code=one-time-code&state=forged#/jobs")
        expect(page.locator("#page-error")).to_contain_text("not for this page")
        assert len(ui.exchanged) == 1
    finally:
        live.app.web_config, live.app.web_csp = None, csp
        ui.close()


@pytest.mark.slow
def test_browser_page_on_another_origin_talks_to_the_api_only_when_cors_allows_it(page, live, tmp_path, monkeypatch):
    """The static files deployed apart (as on CloudFront): served by a plain file server on another
    port, with a config.json naming the API. The browser lets the page read the API only when the
    API's CORS origin is the page's."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from playwright.sync_api import expect

    site = tmp_path / "site"
    shutil.copytree(webapp.WEB_DIR, site)
    (site / "config.json").write_text(json.dumps({"api": live.url, "max_bytes": MAX_BYTES,
                                                  "auth": {"kind": "local", "dev_sign_in": False}}))
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://localhost:{server.server_address[1]}"  # another origin than the API's 127.0.0.1
    _add_jobs(live, "ivan", 1, status=Status.COMPLETED, summary="cors")
    try:
        page.goto(origin + "/index.html")
        expect(page.locator("#no-signin")).to_be_visible()  # no dev sign-in away from the API's own page
        page.evaluate(f"sessionStorage.setItem('musicvid.token', {live.token('ivan')!r})")
        page.problems.clear()
        page.goto(origin + "/index.html#/jobs")  # the API allows http://localhost:3000 only: refused
        expect(page.locator("#page-error")).to_contain_text("can't be reached")
        assert page.locator("#jobs li").count() == 0
        monkeypatch.setattr(live.app, "settings", live.app.settings.model_copy(update={"cors_origin": origin}))
        page.reload()
        expect(page.locator("#jobs li")).to_have_count(1)
        expect(page.locator("#jobs")).to_contain_text("ivan prompt 0")
        page.problems.clear()  # the refused read above is logged as a console error: expected
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def music_media(tmp_path_factory):
    """A 6 s clip (a cut at 3 s; the library's shortest edit needs ~4.3 s), a 16 s track with known
    bars (issue 15's synthetic band, 120 bpm, a real ending) and a 4 s one (too short)."""
    import soundfile as sf

    from musicvid_core.lab.samples import make_video
    from musicvid_core.lab.tracks import make_track

    where = tmp_path_factory.mktemp("web-music")
    clip = make_video(where / "clip6.mp4", (3.0, 3.0), audio="tone").path
    for name, bars in (("my-song.wav", 8), ("short.wav", 2)):
        track = make_track(bpm=120, bars=bars, ending=bars > 2, ring_s=1.0, sample_rate=22050)
        sf.write(where / name, track.audio, track.sample_rate)
    return {"clip": clip, "track": where / "my-song.wav", "short": where / "short.wav"}


@pytest.mark.slow
def test_browser_music_from_the_library_and_from_my_track(page, live, music_media, tmp_path):
    """Issue 15 in the web app: the music source choice, the audio picker's checks, the track uploaded
    through the same presigned POST, and the result naming the track and why."""
    from playwright.sync_api import expect

    services = live.app.services
    _sign_in(page, live, "dora")
    # The library: the server picks a recording for the prompt and the picture.
    page.set_input_files("#file", str(music_media["clip"]))
    page.locator("#prompt").fill("calm and gentle")
    expect(page.locator("#track-pick")).to_be_hidden()
    page.get_by_label("Library: a recorded track").check()
    expect(page.locator("#track-pick")).to_be_hidden()
    page.get_by_role("button", name="Score my video").click()
    page.wait_for_url(re.compile("#/jobs/"))
    job_id = page.url.rsplit("/", 1)[1]
    _wait_status(page, "Done", timeout=300_000)  # the library's index is built on first use
    assert services.jobs.get(job_id).options.music.kind == "library"
    expect(page.locator("#plan-music")).to_be_visible()
    expect(page.locator("#music-heading")).to_have_text("The track, from the library")
    expect(page.locator("#music-title")).not_to_be_empty()
    expect(page.locator("#music-why")).not_to_be_empty()
    expect(page.locator("#music-facts")).to_contain_text("bpm")

    # My track: the picker appears, checks the file at once, and the track goes up after the video.
    page.goto(live.url + "/app/#/new")
    page.set_input_files("#file", str(music_media["clip"]))
    page.locator("#prompt").fill("my own song, please")
    page.get_by_label("My track: your own recording").check()
    expect(page.locator("#track-pick")).to_be_visible()
    page.get_by_role("button", name="Score my video").click()
    expect(page.locator("#track-error")).to_have_text("Choose your track (an audio file) first.")
    (tmp_path / "notes.txt").write_text("hello")
    page.set_input_files("#track-file", str(tmp_path / "notes.txt"))
    expect(page.locator("#track-error")).to_contain_text("is not a music file")
    page.set_input_files("#track-file", str(music_media["short"]))
    expect(page.locator("#track-error")).to_contain_text("a track needs at least 8 s")
    page.set_input_files("#track-file", str(music_media["track"]))
    expect(page.locator("#track-error")).to_be_hidden()
    expect(page.locator("#track-facts")).to_contain_text(re.compile(r"1\d\.\d s"))
    assert services.jobs.list_for_user("dora")[0][0].job_id == job_id  # nothing submitted by the refusals
    _shot(page, "7-music-my-track")
    page.get_by_role("button", name="Score my video").click()
    page.wait_for_url(re.compile("#/jobs/"))
    mine = page.url.rsplit("/", 1)[1]
    music = services.jobs.get(mine).options.music
    assert music.kind == "track" and music.track.startswith("uploads/dora/") and music.track.endswith(".wav")
    assert music.title == "my-song.wav"  # the file's name, sent as music.title (the key is a uuid)
    assert services.objects.get_bytes(music.track) == music_media["track"].read_bytes()  # uploaded whole
    _wait_status(page, "Done", timeout=300_000)
    expect(page.locator("#music-heading")).to_have_text("The track")
    expect(page.locator("#music-title")).to_have_text("my-song.wav")
    expect(page.locator("#music-facts")).to_contain_text("120 bpm")
    expect(page.locator("#music-why")).not_to_be_empty()
    _shot(page, "8-music-result")
