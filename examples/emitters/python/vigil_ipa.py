#!/usr/bin/env python3
"""vigil_ipa: report outgoing HTTP calls to a local Vigil agent (IPA version 2).

One UDP datagram per call, fire and forget: the application never waits for
the agent, and a missing agent costs nothing but the datagram. The format is
docs/IPA.md's version 2:

    2 <TAB> TIMESTAMP_MS <TAB> METHOD <TAB> URL <TAB> STATUS <TAB> DURATION_MS [<TAB> ERROR_CLASS]

Use it as a library:

    from vigil_ipa import Reporter
    ipa = Reporter()                       # 127.0.0.1:51712, or VIGIL_IPA_HOST / VIGIL_IPA_PORT
    status, body = ipa.urlopen("https://api.example.com/v1/users/42")

or report calls made by any other client with `ipa.report(...)`.

Run as a program it fetches each URL given and reports every call:

    python3 vigil_ipa.py [--ipa-host H] [--ipa-port P] [--method GET] URL...

Standard library only; Python 3.8 or later.
"""
import os
import socket
import sys
import time
import urllib.error
import urllib.request

MAX_LINE = 8192          # the agent drops longer lines (as `oversize`)
MAX_ERROR_CLASS = 64


class Reporter:
    def __init__(self, host=None, port=None):
        self.address = (host or os.environ.get("VIGIL_IPA_HOST", "127.0.0.1"),
                        int(port or os.environ.get("VIGIL_IPA_PORT", "51712")))
        family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    def report(self, method, url, status, duration_ms, error_class=None, started_ms=None):
        """Sends one record. status: the HTTP status, 0 when no response came
        (then error_class says why). Never raises on a send failure."""
        if started_ms is None:
            started_ms = int(time.time() * 1000 - duration_ms)
        fields = ["2", str(int(started_ms)), method, _clean(url), str(int(status)), "%.3f" % max(0.0, duration_ms)]
        if error_class:
            fields.append(_token(error_class))
        line = "\t".join(fields)
        if len(line) > MAX_LINE:
            return
        try:
            self.sock.sendto(line.encode("utf-8", "replace") + b"\n", self.address)
        except OSError:
            pass        # agent down or buffer full: the call itself is not affected

    def urlopen(self, url, method="GET", data=None, timeout=10):
        """Makes the call with urllib, reports it, and returns (status, body);
        status 0 and body None when no response came."""
        started = time.time()
        t0 = time.monotonic()
        status, body, error_class = 0, None, None
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method), timeout=timeout) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:          # a response, with an error status
            status, body = e.code, e.read()
        except (urllib.error.URLError, OSError) as e:  # no response at all
            error_class = _error_class(e)
        self.report(method, url, status, (time.monotonic() - t0) * 1000, error_class, int(started * 1000))
        return status, body


def _clean(url):
    # No TAB or newline may reach the line; the agent cuts the query itself.
    return url.replace("\t", "%09").replace("\n", "%0A").replace("\r", "%0D")


def _token(text):
    out = "".join(c if c.isalnum() or c in "_-.:" else "_" for c in text)
    return out[:MAX_ERROR_CLASS] or "error"


def _error_class(e):
    reason = getattr(e, "reason", e)
    if isinstance(reason, socket.timeout) or isinstance(reason, TimeoutError):
        return "timeout"
    if isinstance(reason, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(reason, socket.gaierror):
        return "dns"
    return _token(type(reason).__name__)


def main(argv):
    host, port, method, urls = None, None, "GET", []
    args = iter(argv)
    for a in args:
        if a == "--ipa-host":
            host = next(args)
        elif a == "--ipa-port":
            port = next(args)
        elif a == "--method":
            method = next(args)
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            urls.append(a)
    ipa = Reporter(host, port)
    for url in urls:
        status, _ = ipa.urlopen(url, method=method)
        print("%s %s %d" % (method, url, status))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
