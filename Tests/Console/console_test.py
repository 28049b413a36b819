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
