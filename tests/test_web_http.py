"""The pure parts of the HTTP side: routing, options, the Host rule, the page's policy, responses."""

from __future__ import annotations

import base64
import hashlib
import re
from http import HTTPStatus

import pytest
from websockets.datastructures import Headers
from websockets.http11 import Request

from skyscreen_hw.net import http
from skyscreen_hw.net.http import HttpError, LiveOptions, Route
from skyscreen_hw.origins import check_origins


def request(path: str, websocket: bool = False, **headers: str) -> Request:
    h = Headers(Host="127.0.0.1:8765", **{k.replace("_", "-"): v for k, v in headers.items()})
    if websocket:
        h["Upgrade"] = "websocket"
        h["Connection"] = "Upgrade"
    return Request(path, h)


@pytest.mark.parametrize(
    ("path", "websocket", "expected"),
    [
        ("/", False, (Route.PAGE, None)),
        ("/?token=x", False, (Route.PAGE, None)),
        ("/status", False, (Route.STATUS, None)),
        ("/status?token=x", False, (Route.STATUS, None)),
        ("/", True, (Route.INSTRUCTIONS, None)),
        ("/?token=x", True, (Route.INSTRUCTIONS, None)),
        ("/live", True, (Route.LIVE, LiveOptions(30.0, 1))),
        ("/live?fps=12.5&scale=4&token=x", True, (Route.LIVE, LiveOptions(12.5, 4))),
    ],
)
def test_routes(path: str, websocket: bool, expected: tuple) -> None:
    assert http.route(request(path, websocket)) == expected


@pytest.mark.parametrize(
    ("path", "websocket", "status"),
    [
        ("/nope", False, HTTPStatus.NOT_FOUND),
        ("/nope", True, HTTPStatus.NOT_FOUND),
        ("/status", True, HTTPStatus.NOT_FOUND),
        ("/live", False, HTTPStatus.UPGRADE_REQUIRED),
        ("/live?fps=0", True, HTTPStatus.BAD_REQUEST),
        ("/live?fps=61", True, HTTPStatus.BAD_REQUEST),
        ("/live?fps=nan", True, HTTPStatus.BAD_REQUEST),
        ("/live?scale=0", True, HTTPStatus.BAD_REQUEST),
        ("/live?scale=1.5", True, HTTPStatus.BAD_REQUEST),
    ],
)
def test_refused_routes(path: str, websocket: bool, status: HTTPStatus) -> None:
    with pytest.raises(HttpError) as caught:
        http.route(request(path, websocket))
    assert caught.value.status == status


def test_token_from_query_or_bearer() -> None:
    assert http.token_from(request("/?token=abc")) == "abc"
    assert http.token_from(request("/live", Authorization="Bearer xyz")) == "xyz"
    assert http.token_from(request("/")) == ""


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8765", True),
        ("127.1.2.3", True),
        ("localhost:8765", True),
        ("LOCALHOST", True),
        ("dev.localhost:80", True),
        ("[::1]:8765", True),
        ("mypi.local:8080", True),  # the host of a listed origin
        ("attacker.example:8765", False),
        ("192.168.1.5:8765", False),
        ("[::ffff:127.0.0.1]:8765", True),
        ("", False),
        (None, True),  # no Host: not a browser
    ],
)
def test_host_rule_without_a_token(host: str | None, allowed: bool) -> None:
    assert http.host_allowed(host, check_origins(["http://mypi.local:8080"])) is allowed


def test_host_rule_allows_this_machines_own_name() -> None:
    assert http.host_allowed("mypi:8765", (), ("mypi",))
    assert not http.host_allowed("mypi.attacker.example:8765", (), ("mypi",))


def test_the_page_policy_hashes_exactly_its_inline_blocks() -> None:
    html = "<style>a{}</style><script>one()</script><script type='x'>two()</script>"

    def digest(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert http.inline_hashes(html, "script") == (digest("one()"), digest("two()"))
    assert http.inline_hashes(html, "style") == (digest("a{}"),)
    page = http.Page(b"", ("abc=",), ("def=",))
    csp = page.csp("127.0.0.1:8765")
    assert "script-src 'sha256-abc=';" in csp and "style-src 'sha256-def=';" in csp
    assert "connect-src 'self' ws://127.0.0.1:8765 wss://127.0.0.1:8765;" in csp
    assert "connect-src 'self';" in page.csp("bad;host")  # a Host that is no host name adds nothing
    assert "connect-src 'self' ws://[::1]:8765" in page.csp("[::1]:8765")


def test_the_shipped_page_has_one_inline_script_and_style_and_nothing_from_elsewhere() -> None:
    page = http.page()
    assert len(page.script_hashes) == 1 and len(page.style_hashes) == 1
    text = page.html.decode()
    assert "https://" not in text and "http://" not in text
    markup = re.sub(r"<(script|style)>.*?</\1>", "", text, flags=re.S)
    assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", markup)  # no onclick=...: the policy would block it
    assert not re.search(r"<[a-z][^>]*\sstyle\s*=", markup)


def test_responses_carry_the_security_headers_and_close() -> None:
    r = http.text_response(HTTPStatus.NOT_FOUND, "gone")
    assert (r.status_code, r.body) == (404, b"gone\n")
    assert r.headers["Connection"] == "close" and r.headers["Content-Length"] == "5"
    assert r.headers["Content-Security-Policy"] == http.PLAIN_CSP
    assert r.headers["Cache-Control"] == "no-store" and r.headers["X-Frame-Options"] == "DENY"
    j = http.json_response({"a": [1, 2]})
    assert j.body == b'{"a":[1,2]}' and j.headers["Content-Type"] == "application/json"
    p = http.page_response("localhost:1234")
    assert (
        p.headers["Content-Type"] == "text/html; charset=utf-8"
        and "ws://localhost:1234" in p.headers["Content-Security-Policy"]
    )
