"""The console in headless Chromium against a real collector and real agents
(started by scripts/console-test.sh, which passes VIGIL_URL and VIGIL_TOKEN).

Each case prints `ok - NAME` or `FAIL - NAME: why`; the exit status is the
number of failures (0: all passed). Screenshots of each page go to
$VIGIL_SCREENSHOTS (docs/console by default). Run with Debian's
/usr/bin/python3, which sees python3-selenium.
"""
import json
import os
import sys
import time
import traceback
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

URL = os.environ["VIGIL_URL"].rstrip("/")
TOKEN = os.environ["VIGIL_TOKEN"]
SHOTS = os.environ.get("VIGIL_SCREENSHOTS", "docs/console")

# The state colours of console.css, as the browser computes them.
STATE_RGB = {
    "not_visible": "rgb(138, 143, 152)",
    "connecting": "rgb(59, 130, 196)",
    "stopped": "rgb(208, 140, 0)",
    "capturing": "rgb(46, 158, 68)",
    "wrong_configuration": "rgb(198, 40, 40)",
}


def api(method, path, body=None):
    """The API with the bearer token, as a script would call it."""
    req = urllib.request.Request(URL + "/api/v1" + path, method=method,
                                 headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"},
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def wait(what, fn, timeout=10.0):
    """Polls fn until it returns a true value; raises naming `what`."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # the page may be re-rendering
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Console:
    def __init__(self):
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
            opts.add_argument(a)
        self.d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        self.d.set_script_timeout(15)

    def css(self, sel):
        return self.d.find_element(By.CSS_SELECTOR, sel)

    def all(self, sel):
        return self.d.find_elements(By.CSS_SELECTOR, sel)

    def go(self, fragment):
        self.d.get(URL + "/" + fragment)

    def page_fetch_status(self, method, path):
        """What the API answers the page itself (its cookie, no token)."""
        return self.d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[1], {method: arguments[0], credentials: 'same-origin'})"
            ".then(r => done(r.status)).catch(e => done(String(e)));", method, "/api/v1" + path)

    def shot(self, name):
        if not SHOTS:
            return
        os.makedirs(SHOTS, exist_ok=True)
        time.sleep(0.3)
        self.d.save_screenshot(os.path.join(SHOTS, name + ".png"))

    def quit(self):
        self.d.quit()


def agents_by_name():
    status, body = api("GET", "/agents")
    assert status == 200, body
    return {a["name"]: a for a in body["agents"]}


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


# ---- cases, in order (each may rely on the earlier ones) ----

@case
def sign_in_with_the_admin_token(c):
    c.go("")
    wait("the sign-in form", lambda: c.css('[data-form="sign-in"]').is_displayed())
    assert c.d.execute_script("return document.body.dataset.signedIn") == "false"
    c.shot("sign-in")
    c.css('[data-field="token"]').send_keys("a-wrong-token-value")
    c.css('[data-action="sign-in"]').click()
    wait("the wrong-token message", lambda: "Wrong token" in c.css('[data-error="sign-in"]').text)
    assert c.page_fetch_status("GET", "/agents") == 401
    c.css('[data-field="token"]').send_keys(TOKEN)
    c.css('[data-action="sign-in"]').click()
    wait("the console", lambda: c.d.execute_script("return document.body.dataset.signedIn") == "true")
    assert c.page_fetch_status("GET", "/agents") == 200
    stored = c.d.execute_script(
        "return JSON.stringify(Object.assign({}, localStorage)) + JSON.stringify(Object.assign({}, sessionStorage))")
    assert TOKEN not in stored, "the token is in the page's storage"
    assert "vigil_session" not in c.d.execute_script("return document.cookie"), "the cookie is readable by scripts"


@case
def fleet_shows_each_agent_in_its_state_colour(c):
    wait("both agents capturing", lambda: all(a["state"] == "capturing" for a in agents_by_name().values())
         and len(agents_by_name()) == 2, timeout=20)
    c.go("#/fleet")
    ids = {a["id"]: a for a in agents_by_name().values()}
    for agent_id, a in ids.items():
        row = wait(f"the fleet row of {a['name']}",
                   lambda: c.css(f'tr[data-agent-id="{agent_id}"][data-state="{a["state"]}"]'))
        colour = c.d.execute_script("return getComputedStyle(arguments[0].cells[0]).borderLeftColor", row)
        assert colour == STATE_RGB[a["state"]], f"{a['name']}: colour {colour}, want {STATE_RGB[a['state']]}"
        words = row.find_element(By.CSS_SELECTOR, ".state").text
        assert words == "capturing", f"state in words: {words!r}"
    c.shot("fleet")


CFG_RGB = {"default": "rgb(31, 95, 191)", "editing": "rgb(224, 123, 0)", "valid": "rgb(46, 158, 68)",
           "set": "rgb(17, 17, 17)", "invalid": "rgb(198, 40, 40)"}


def config_row(c, key, status=None, scope=""):
    sel = f'{scope} tr[data-key="{key}"]' + (f'[data-status="{status}"]' if status else "")
    return c.css(sel.strip())


def cfg_colour(c, row):
    return c.d.execute_script("return getComputedStyle(arguments[0].querySelector('.cfg-value')).color", row)


def agent_config_value(agent_id, key):
    status, body = api("GET", f"/agents/{agent_id}/config")
    assert status == 200, body
    return next(e for e in body["config"] if e["key"] == key)


@case
def stop_capture_then_start_capture(c):
    alpha = agents_by_name()["alpha"]
    c.go(f"#/agent/{alpha['id']}")
    button = wait("the STOP CAPTURE button", lambda: c.css('[data-action="capture"][data-capture="stop"]'))
    assert button.text == "STOP CAPTURE", button.text
    wait("the interfaces", lambda: c.all('[data-table="interfaces"] tr[data-interface]'))
    c.shot("agent")
    button.click()
    wait("the agent's answer", lambda: c.css('[data-capture-result="ok"]'))
    wait("the agent stopped", lambda: c.css(f'main[data-agent-id="{alpha["id"]}"][data-state="stopped"]'))
    assert agents_by_name()["alpha"]["state"] == "stopped"
    c.go("#/fleet")
    wait("the fleet row stopped", lambda: c.css(f'tr[data-agent-id="{alpha["id"]}"][data-state="stopped"]'))
    c.go(f"#/agent/{alpha['id']}")
    wait("the START CAPTURE button", lambda: c.css('[data-action="capture"][data-capture="start"]')).click()
    wait("the agent capturing", lambda: c.css(f'main[data-agent-id="{alpha["id"]}"][data-state="capturing"]'))
    assert agents_by_name()["alpha"]["state"] == "capturing"


@case
def fleet_filters_by_state_and_searches_by_name(c):
    c.go("#/fleet")
    wait("two rows", lambda: len(c.all("tr[data-agent-id]")) == 2)
    c.css('[data-field="search"]').send_keys("alp")
    alpha = agents_by_name()["alpha"]["id"]
    wait("only alpha", lambda: [r.get_attribute("data-agent-id") for r in c.all("tr[data-agent-id]")] == [alpha])
    c.d.execute_script("const s = document.querySelector('[data-filter=state]'); s.value = 'stopped'; s.dispatchEvent(new Event('change'));")
    wait("no stopped agent", lambda: len(c.all("tr[data-agent-id]")) == 0 and c.css('[data-empty="fleet"]').is_displayed())


@case
def fleet_is_sorted_by_name_and_counts_agents_by_state(c):
    c.go("#/project")  # leaves the filtered fleet of the case before: a fresh Fleet page
    wait("the projects list", lambda: c.css('[data-list="projects"]'))
    c.go("#/fleet")
    by_name = agents_by_name()
    names = lambda: [r.find_element(By.CSS_SELECTOR, '[data-link="agent"]').text for r in c.all("tr[data-agent-id]")]
    wait("the rows by name", lambda: names() == ["alpha", "beta"])
    assert c.css('[data-field="sort"]').get_attribute("value") == "name"
    count = lambda s: c.css(f'[data-section="state-counts"] [data-count="{s}"] strong').text
    wait("two capturing of two", lambda: count("capturing") == "2" and count("total") == "2")
    assert count("stopped") == "0" and count("not_visible") == "0"
    # A count is a filter: "stopped" shows none, clicking it again shows all.
    c.css('[data-section="state-counts"] [data-count="stopped"]').click()
    wait("no stopped agent", lambda: len(c.all("tr[data-agent-id]")) == 0)
    assert c.css('[data-filter="state"]').get_attribute("value") == "stopped"
    assert count("capturing") == "2", "the counts are not narrowed by the state filter"
    c.css('[data-section="state-counts"] [data-count="stopped"]').click()
    wait("both again", lambda: names() == ["alpha", "beta"])
    # By id: the order of the ids.
    c.d.execute_script("const s = document.querySelector('[data-field=sort]'); s.value = 'id'; s.dispatchEvent(new Event('change'));")
    want = [a["name"] for a in sorted(by_name.values(), key=lambda a: a["id"])]
    wait("the rows by id", lambda: names() == want)
    c.d.execute_script("const s = document.querySelector('[data-field=sort]'); s.value = 'name'; s.dispatchEvent(new Event('change'));")


@case
def invalid_value_turns_red_and_nothing_is_sent(c):
    alpha = agents_by_name()["alpha"]
    before = agent_config_value(alpha["id"], "status_interval_ms")
    c.go(f"#/config/{alpha['id']}")
    row = wait("the status_interval_ms row", lambda: config_row(c, "status_interval_ms"))
    field = row.find_element(By.CSS_SELECTOR, "input")
    field.clear()
    field.send_keys("fast")
    wait("orange while editing", lambda: config_row(c, "status_interval_ms", "editing"))
    field.send_keys("\n")
    row = wait("red", lambda: config_row(c, "status_interval_ms", "invalid"))
    assert cfg_colour(c, row) == CFG_RGB["invalid"], cfg_colour(c, row)
    tip = row.find_element(By.CSS_SELECTOR, '[data-error="status_interval_ms"]').get_attribute("title")
    assert "expected a duration 100...3600000 ms" in tip, tip
    c.shot("config-invalid")
    c.css('[data-action="apply"]').click()
    wait("not sent", lambda: c.css('[data-apply-result="invalid"]'))
    time.sleep(0.5)
    after = agent_config_value(alpha["id"], "status_interval_ms")
    assert after == before, f"sent anyway: {after}"
    status, audit = api("GET", "/audit?action=config.update")
    assert status == 200 and audit["audit"] == [], audit


@case
def valid_value_turns_green_then_black_and_the_agent_runs_it(c):
    alpha = agents_by_name()["alpha"]
    row = config_row(c, "status_interval_ms")
    field = row.find_element(By.CSS_SELECTOR, "input")
    field.clear()
    field.send_keys("1500\n")
    row = wait("green", lambda: config_row(c, "status_interval_ms", "valid"))
    assert cfg_colour(c, row) == CFG_RGB["valid"], cfg_colour(c, row)
    c.css('[data-action="apply"]').click()
    wait("applied", lambda: c.css('[data-apply-result="ok"]'))
    row = wait("black", lambda: config_row(c, "status_interval_ms", "set"))
    assert cfg_colour(c, row) == CFG_RGB["set"], cfg_colour(c, row)
    assert row.find_element(By.CSS_SELECTOR, "input").get_attribute("value") == "1500"
    wait("the agent reporting 1500", lambda: agent_config_value(alpha["id"], "status_interval_ms")["value"] == "1500")
    c.shot("config")


@case
def project_default_shows_blue_on_an_agent_without_its_own_value(c):
    beta = agents_by_name()["beta"]
    c.go("#/project/shop")
    scope = '[data-section="project-config"]'
    row = wait("the project's aggregation_interval_ms", lambda: config_row(c, "aggregation_interval_ms", "default", scope))
    field = row.find_element(By.CSS_SELECTOR, "input")
    field.clear()
    field.send_keys("3000\n")
    wait("green", lambda: config_row(c, "aggregation_interval_ms", "valid", scope))
    c.css(f'{scope} [data-action="apply"]').click()
    wait("black on the project", lambda: config_row(c, "aggregation_interval_ms", "set", scope))
    c.shot("project")
    c.go(f"#/config/{beta['id']}")
    row = wait("blue with the project's value on beta",
               lambda: (r := config_row(c, "aggregation_interval_ms", "default"))
               and r.find_element(By.CSS_SELECTOR, "input").get_attribute("value") == "3000" and r)
    assert cfg_colour(c, row) == CFG_RGB["default"], cfg_colour(c, row)
    assert row.get_attribute("data-origin") == "project", row.get_attribute("data-origin")


@case
def project_keys_are_listed_created_once_and_revoked(c):
    c.go("#/project/shop")
    status, before = api("GET", "/projects/shop/keys")
    assert status == 200, before
    wait("the key rows", lambda: len(c.all('[data-table="keys"] tr[data-key-id]')) == len(before["keys"]))
    page = c.css('[data-table="keys"]').text
    c.css('[data-action="create-key"]').click()
    text = wait("the new key's text", lambda: c.css('[data-new-key] [data-key-text]').text)
    assert text.startswith("shop.") and text.count(".") == 2, text
    _, after = api("GET", "/projects/shop/keys")
    new = [k for k in after["keys"] if k["id"] not in {k["id"] for k in before["keys"]}]
    assert len(new) == 1 and new[0]["revoked"] is None, after
    assert "access_key" not in json.dumps(after) and text.split(".")[1] not in json.dumps(after), "a secret in the list"
    row = wait("the new key's row", lambda: c.css(f'tr[data-key-id="{new[0]["id"]}"][data-key-state="active"]'))
    assert text.split(".")[1] not in page + row.text, "the secret in the table"
    c.d.execute_script("arguments[0].scrollIntoView()", c.css('[data-table="keys"]'))
    c.shot("project-keys")
    row.find_element(By.CSS_SELECTOR, '[data-action="revoke-key"]').click()
    c.d.switch_to.alert.accept()
    wait("the key revoked", lambda: c.css(f'tr[data-key-id="{new[0]["id"]}"][data-key-state="revoked"]'))
    wait("the revoke message", lambda: c.css('[data-keys-result="revoked"]'))
    _, after = api("GET", "/projects/shop/keys")
    assert next(k for k in after["keys"] if k["id"] == new[0]["id"])["revoked"], after
    assert all(k["revoked"] is None for k in after["keys"] if k["id"] != new[0]["id"]), "another key revoked"
    status, audit = api("GET", "/audit?action=keys.revoke")
    assert status == 200 and any(e["actor"] == "api:console" for e in audit["audit"]), audit
    status, audit = api("GET", "/audit?action=keys.create")
    assert status == 200 and any(e["actor"] == "api:console" for e in audit["audit"]), audit


@case
def filter_rules_move_and_report_field_errors(c):
    c.go("#/project/shop")
    wait("the rules table", lambda: c.css('[data-table="rules"]'))
    c.css('[data-action="add-rule"]').click()
    c.css('[data-action="add-rule"]').click()
    first = c.css('[data-rule="0"][data-field="monitor"]')
    first.send_keys("shop")
    c.css('[data-rule="0"][data-field="check"]').send_keys("first")
    c.css('tr[data-rule-index="0"] [data-action="rule-down"]').click()
    assert c.css('[data-rule="1"][data-field="check"]').get_attribute("value") == "first"
    c.css('[data-action="save-rules"]').click()
    err = wait("per-field errors on rule 1", lambda: c.css('[data-field-error="patterns[0].monitor"]'))
    assert "monitor" in err.text or err.text, err.text
    c.css('[data-rule="0"][data-field="monitor"]').send_keys("shop")
    c.css('[data-rule="0"][data-field="check"]').send_keys("second")
    c.css('[data-action="save-rules"]').click()
    wait("saved", lambda: c.css('[data-rules-result="ok"]'))
    status, body = api("GET", "/projects/shop/patterns")
    assert [p["check"] for p in body["patterns"]] == ["second", "first"], body


# ---- Measurements, Collector, Audit, Upload ----

def canvas_pixels(c, chart_selector, rgb, tolerance=40):
    """Pixels of colour `rgb` (within `tolerance` per channel, antialiasing)
    on the canvases of a chart, read back in the page with getImageData."""
    return c.d.execute_script("""
        const [sel, rgb, tol] = arguments;
        let n = 0;
        for (const cv of document.querySelectorAll(sel + ' canvas')) {
          if (!cv.width || !cv.height) continue;
          const px = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
          for (let i = 0; i < px.length; i += 4) {
            if (px[i + 3] > 128 && Math.abs(px[i] - rgb[0]) <= tol && Math.abs(px[i + 1] - rgb[1]) <= tol
                && Math.abs(px[i + 2] - rgb[2]) <= tol) n++;
          }
        }
        return n;""", chart_selector, rgb, tolerance)


# The first series colour of charts.js (#1f5fbf): p50 on latency charts, the first line elsewhere.
FIRST_SERIES_RGB = [31, 95, 191]
UPLOAD_LINES = 300


def capture_file():
    """IPA version 2 lines over the last ten minutes (ten one-minute windows),
    five lines no rule matches, two malformed ones."""
    now = int(time.time() * 1000)
    lines = []
    for i in range(UPLOAD_LINES):
        ts = now - 600_000 + i * 2_000
        lines.append(f"2\t{ts}\tGET\thttps://shop.example/cart/{i}\t{200 if i % 10 else 503}\t{5 + (i % 50)}.5")
    lines += [f"2\t{now}\tPOST\thttps://shop.example/order/{i}\t200\t3" for i in range(5)]
    lines += ["9\tnot\tipa", "2\tGET"]
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"vigil-console-capture-{os.getpid()}.ipa")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


@case
def an_upload_shows_its_counts_and_its_measurements_appear(c):
    # The project's rule, set by a script that names itself (the audit case looks for it).
    rules = {"patterns": [{"method": "GET", "host": "*", "path": "/cart/*", "monitor": "shop", "check": "cart"}]}
    req = urllib.request.Request(URL + "/api/v1/projects/shop/patterns", method="PUT", data=json.dumps(rules).encode(),
                                 headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json",
                                          "X-Vigil-Actor": "browser-test"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200
    path = capture_file()
    try:
        c.go("#/upload")
        wait("the project list", lambda: c.css('[data-page="upload"] [data-field="project"] option[value="shop"]'))
        c.css('[data-field="project"]').send_keys("shop")
        c.css('[data-field="file"]').send_keys(path)
        c.css('[data-action="upload"]').click()
        wait("the upload done", lambda: c.css('[data-upload-state="done"]'), timeout=30)
        count = lambda hook: c.css(f'[{hook}] .value').text.replace(",", "")
        assert count('data-count="read"') == str(UPLOAD_LINES + 7), count('data-count="read"')
        assert count('data-count="stored"') == str(UPLOAD_LINES), count('data-count="stored"')
        assert count('data-dropped="unmatched"') == "5", count('data-dropped="unmatched"')
        assert count('data-dropped="bad_version"') == "1", count('data-dropped="bad_version"')
        assert count('data-dropped="field_count"') == "1", count('data-dropped="field_count"')
        assert c.d.execute_script("const p = document.querySelector('[data-progress=\"upload\"]'); return p.value === p.max")
        c.shot("upload")
    finally:
        os.unlink(path)
    # Its measurements appear, under the virtual upload agent, on the Measurements page.
    status, body = api("GET", "/measurements?project=shop&agent=upload-shop&limit=100")
    assert status == 200 and sum(m["count"] for m in body["measurements"]) == UPLOAD_LINES, body
    assert any(a["mode"] == "upload" for a in agents_by_name().values()), agents_by_name()
    c.css('[data-link="measurements"]').click()
    wait("the shop/cart series", lambda: c.css('[data-page="measurements"] [data-field="series"][data-series="shop/cart"]'))
    wait("ten windows on the in-process latency chart",
         lambda: int(c.css('[data-chart="latency"][data-source="ipa"]').get_attribute("data-points")) >= 10, timeout=15)


@case
def a_chart_draws_real_data(c):
    # The Measurements page from the upload case: its lines are drawn on the canvas.
    sel = '[data-chart="latency"][data-source="ipa"]'
    n = wait("p50 line pixels on the latency chart", lambda: canvas_pixels(c, sel, FIRST_SERIES_RGB) > 50 and
             canvas_pixels(c, sel, FIRST_SERIES_RGB))
    assert int(c.css('[data-chart="calls"][data-source="ipa"]').get_attribute("data-points")) >= 10
    # The charts draw the collector's merged buckets (step, every agent merged): the points and the
    # p99 of the newest bucket are the API's.
    step = c.css('[data-info="measurements"]').get_attribute("data-step")
    assert step and int(step) >= 10_000, step
    since = int(time.time() * 1000) - 3600_000
    status, merged = api("GET", f"/measurements?project=shop&monitor=shop&check=cart&source=ipa&since={since}"
                                f"&step={step}&group_by=none&limit=2000")
    assert status == 200 and merged["measurements"] and all(g["merged"] for g in merged["measurements"]), merged
    assert "without a histogram" not in c.css('[data-info="measurements"]').text
    assert sum(g["count"] for g in merged["measurements"]) == UPLOAD_LINES, merged
    points = int(c.css('[data-chart="latency"][data-source="ipa"]').get_attribute("data-points"))
    assert points == len(merged["measurements"]), (points, len(merged["measurements"]))
    newest = max(merged["measurements"], key=lambda g: g["ts"])
    drawn = c.d.execute_script("const g = document.querySelector('[data-chart=\"latency\"][data-source=\"ipa\"]').graph;"
                               "return [g.getValue(g.numRows() - 1, 0), g.getValue(g.numRows() - 1, 3)];")
    assert drawn[0] == newest["ts"] and abs(drawn[1] - newest["p99_ms"]) < 1e-9, (drawn, newest)
    # The error rate from the outcome counts: every tenth uploaded call was a 503.
    assert int(c.css('[data-chart="errors"][data-source="ipa"]').get_attribute("data-points")) >= 10
    rate = float(c.css('[data-error-rate="ipa"]').get_attribute("data-rate"))
    assert abs(rate - 0.1) < 1e-9, f"error rate {rate}"
    assert "10 %" in c.css('[data-error-rate="ipa"]').text and "30 of 300" in c.css('[data-error-rate="ipa"]').text
    assert canvas_pixels(c, '[data-chart="errors"][data-source="ipa"]', FIRST_SERIES_RGB) > 50, "error line not drawn"
    assert c.css('[data-chart="latency"][data-source="synthetic"]').get_attribute("data-points") == "0", \
        "no monitor ran: the synthetic side says so instead of drawing"
    c.shot("measurements")
    # The Collector page: its health history, sampled every 500 ms by this test's collector.
    c.go("#/collector")
    wait("sessions history", lambda: int(c.css('[data-chart="sessions"]').get_attribute("data-points") or 0) >= 2,
         timeout=20)
    wait("the sessions line drawn", lambda: canvas_pixels(c, '[data-chart="sessions"]', FIRST_SERIES_RGB) > 50)
    status, body = api("GET", "/collector/history")
    assert status == 200 and any(s["sessions"]["established"] >= 2 for s in body["samples"]), body
    c.shot("collector")
    print(f"  ({n} p50 pixels on the latency chart)")


def send_udp(port, lines):
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for line in lines:
            s.sendto(line.encode(), ("127.0.0.1", int(port)))
    finally:
        s.close()


@case
def agent_page_shows_its_spool_statsd_and_error_rate(c):
    # alpha gets 40 calls of the shop/cart rule (set by the upload case), 10 of them 5xx or transport errors.
    alpha, beta = agents_by_name()["alpha"], agents_by_name()["beta"]
    now = int(time.time() * 1000)
    statuses = [200] * 28 + [404] * 2 + [503] * 6 + [0] * 4
    send_udp(agent_config_value(alpha["id"], "ipa_port")["value"],
             [f"2\t{now}\tGET\thttps://shop.example/cart/{i}\t{st}\t12" for i, st in enumerate(statuses)])
    c.go(f"#/agent/{alpha['id']}")
    card = wait("the error rate of alpha's calls",
                lambda: (t := c.css('[data-summary="error_rate"] .value').text) and "of 40" in t and t, timeout=20)
    assert card.startswith("25 %"), card
    status, body = api("GET", f"/agents/{alpha['id']}")
    counters = body["status"]["counters"]
    for k in ("spool_batches", "spool_bytes", "spool_oldest_age_ms", "spool_corrupt", "spool_dropped_full",
              "spool_dropped_disk_full", "spool_unwritten", "spool_write_failures"):
        assert k in counters, f"{k} not in the status: {counters}"
        wait(f"the spool row {k}", lambda: c.css(f'[data-table="spool"] tr[data-spool="{k}"]'))
    assert c.css('[data-summary="spool"] .value').text != "off"
    assert not c.css('[data-section="statsd"]').is_displayed(), "alpha has no StatsD, its table is hidden"
    c.d.execute_script("arguments[0].scrollIntoView()", c.css('[data-table="spool"]'))
    c.shot("agent-spool")
    # beta receives StatsD: its counters appear on its page.
    send_udp(agent_config_value(beta["id"], "statsd_port")["value"], ["shop.orders:1|c", "shop.cart:12|ms", "bad line"])
    c.go(f"#/agent/{beta['id']}")
    wait("beta's StatsD lines", lambda: int(c.css('[data-statsd="lines"] td.num').text.replace(",", "")) >= 2, timeout=20)
    assert c.css('[data-section="statsd"]').is_displayed()
    assert c.all('[data-statsd^="drops_parse"]'), "the StatsD drops by cause"


@case
def the_alerts_page_shows_a_firing_rule_in_red_and_silences_it(c):
    rule = {"name": "store failing (browser test)",
            "condition": {"kind": "collector_health", "metric": "store_failures", "threshold": -1}}
    status, body = api("POST", "/projects/shop/alerts", rule)
    assert status == 201, body
    c.go("#/alerts")
    row = wait("the rule firing", lambda: [r for r in c.all('tr[data-alert-id="%d"]' % body["id"])
                                          if r.get_attribute("data-alert-state") == "firing"])
    badge = row[0].find_element(By.CSS_SELECTOR, ".alert-state")
    assert badge.text == "firing", badge.text
    dot = c.d.execute_script("return getComputedStyle(arguments[0], '::before').backgroundColor", badge)
    assert dot == "rgb(198, 40, 40)", dot
    row[0].click()
    wait("its history", lambda: c.all('tr[data-transition="firing"]'))
    row = c.css('tr[data-alert-id="%d"]' % body["id"])
    row.find_element(By.CSS_SELECTOR, '[data-action="silence"]').click()
    wait("the silence listed", lambda: c.all("tr[data-silence-id]"))
    status, silences = api("GET", "/projects/shop/silences")
    assert status == 200 and any(s["rule_id"] == body["id"] for s in silences["silences"]), silences
    c.shot("alerts")
    c.css("tr[data-silence-id] [data-action=unsilence]").click()
    wait("the silence ended", lambda: not c.all("tr[data-silence-id]"))


@case
def the_audit_page_lists_an_action_done_in_the_test(c):
    c.go("#/audit")
    row = wait("the rule change of the upload case",
               lambda: [r for r in c.all('tr[data-audit-action="patterns.replace"]') if "api:browser-test" in r.text])
    assert row[0].get_attribute("data-result") == "ok", row[0].get_attribute("data-result")
    assert "shop" in row[0].text, row[0].text
    c.css('[data-field="action"]').send_keys("patterns.replace\n")
    wait("only rule changes", lambda: c.all('tr[data-audit-action]') and
         all(r.get_attribute("data-audit-action") == "patterns.replace" for r in c.all('tr[data-audit-action]')))
    c.css('[data-field="action"]').clear()
    c.css('[data-field="action"]').send_keys("\n")
    wait("every action again", lambda: len({r.get_attribute("data-audit-action") for r in c.all('tr[data-audit-action]')}) > 1)
    c.shot("audit")


@case
def sign_out_leaves_the_api_answering_401(c):
    c.css('[data-action="sign-out"]').click()
    wait("the sign-in form", lambda: c.css('[data-form="sign-in"]').is_displayed())
    assert c.page_fetch_status("GET", "/agents") == 401
    assert c.page_fetch_status("GET", "/session") == 401


def main():
    c = Console()
    failures = 0
    try:
        for fn in CASES:
            name = fn.__name__
            t = time.time()
            try:
                fn(c)
                print(f"ok - {name} ({time.time() - t:.1f} s)", flush=True)
            except Exception as e:
                failures += 1
                print(f"FAIL - {name}: {e}", flush=True)
                traceback.print_exc(limit=3)
                if SHOTS:
                    c.shot("failed-" + name)
    finally:
        c.quit()
    print(f"console: {len(CASES) - failures} passed, {failures} failed")
    return failures


if __name__ == "__main__":
    sys.exit(min(main(), 100))
