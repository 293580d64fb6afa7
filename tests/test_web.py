"""The daemon's HTTP side end to end: a real daemon, real HTTP and websocket clients.

/status against docs/status.schema.json, the token on every path when the host is not loopback, the
Origin rule on /live, a loopback Host without a token, 404 for unknown paths, the page's headers, and
`skyscreen-hw status`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "status.schema.json"
TOKEN = "s3cret-w3b"


def config(name: str, extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        outputs = []
        [frame]
        name = "{name}"
        width = 32
        height = 24
        [layout]
        type = "matrix"
        [display]
        fps = 30
        [websocket]
        port = 0
        """
    ) + textwrap.dedent(extra)


class Site:
    def __init__(self, daemon) -> None:
        self.daemon = daemon
        daemon.wait_for_log("running:")
        self.port = int(re.search(r"ws://[\w.\[\]:-]+:(\d+)", daemon.log).group(1))
        self.http = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def ws_status(url: str, **kwargs) -> int:
    """101 when the handshake succeeds, else the HTTP status the server answered."""

    async def attempt() -> int:
        try:
            async with connect(url, open_timeout=10, **kwargs):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    return asyncio.run(attempt())


@pytest.fixture
def open_site(display_name: str, daemon_factory) -> Site:
    return Site(daemon_factory(config(display_name)))


@pytest.fixture
def token_site(display_name: str, daemon_factory) -> Site:
    return Site(daemon_factory(config(display_name, f'host = "0.0.0.0"\ntoken = "{TOKEN}"\n')))


def test_status_validates_against_the_schema_kept_in_the_repo(open_site: Site) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    status, headers, body = get(open_site.http + "/status")
    assert status == 200 and headers["Content-Type"] == "application/json"
    report = json.loads(body)
    jsonschema.validate(report, json.loads(SCHEMA.read_text()))
    assert report["leds"] == 32 * 24 and report["layout"] == "matrix"
    assert [o["kind"] for o in report["outputs"]] == ["live view"]
    assert report["sources"][0]["kind"] == "shared frame"


def test_status_carries_a_network_inputs_figures(display_name: str, daemon_factory) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    site = Site(daemon_factory(config(display_name) + '[[inputs]]\ntype = "ddp"\nport = 0\n'))
    report = json.loads(get(site.http + "/status")[2])
    jsonschema.validate(report, json.loads(SCHEMA.read_text()))
    ddp = next(s for s in report["sources"] if s["kind"] != "shared frame" and "figures" in s)
    assert {"packets", "senders"} <= set(ddp["figures"]), ddp


def test_the_page_has_a_strict_content_security_policy_matching_its_inline_code(open_site: Site) -> None:
    status, headers, body = get(open_site.http + "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    csp = headers["Content-Security-Policy"]
    assert csp.startswith("default-src 'self'; ") and "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    html = body.decode()
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        (inline,) = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}';" in csp
    assert not re.search(r"""(src|href)=["']https?://""", html)
    assert headers["Referrer-Policy"] == "no-referrer" and headers["X-Content-Type-Options"] == "nosniff"


def test_unknown_paths_are_404_and_nothing_else_is_served(open_site: Site) -> None:
    for path in ("/nope", "/status/x", "/index.html", "/../etc/passwd", "/favicon.ico"):
        assert get(open_site.http + path)[0] == 404, path
    assert ws_status(open_site.ws + "/elsewhere") == 404
    assert get(open_site.http + "/live")[0] == 426  # a websocket, not a page


def test_without_a_token_only_loopback_host_names_are_answered(open_site: Site) -> None:
    assert get(open_site.http + "/status", {"Host": f"localhost:{open_site.port}"})[0] == 200
    status, _, body = get(open_site.http + "/status", {"Host": f"attacker.example:{open_site.port}"})
    assert status == 403 and b"set a [websocket] token" in body  # a rebound DNS name gets nothing
    assert ws_status(open_site.ws + "/live", additional_headers={"Host": "attacker.example"}) == 403


def test_with_a_non_loopback_host_every_path_needs_the_token(token_site: Site) -> None:
    for path in ("/", "/status", "/nope"):
        assert get(token_site.http + path)[0] == 401, path
        assert get(token_site.http + path + "?token=wrong")[0] == 401, path
    assert ws_status(token_site.ws + "/live") == 401
    assert ws_status(token_site.ws + "/") == 401
    assert get(token_site.http + f"/?token={TOKEN}")[0] == 200
    assert get(token_site.http + "/status", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert get(token_site.http + f"/nope?token={TOKEN}")[0] == 404
    assert ws_status(token_site.ws + f"/live?token={TOKEN}") == 101
    assert get(token_site.http.replace("127.0.0.1", "localhost") + f"/status?token={TOKEN}")[0] == 200


def test_a_foreign_origin_is_refused_on_live_and_the_own_origin_accepted(token_site: Site) -> None:
    url = token_site.ws + f"/live?token={TOKEN}"
    assert ws_status(url, origin="http://evil.example") == 403
    assert ws_status(url, origin=token_site.http) == 101
    assert "refused a page from origin http://evil.example" in token_site.daemon.log


def test_bad_live_options_are_400_naming_the_option(open_site: Site) -> None:
    async def refusal(query: str) -> tuple[int, str]:
        with pytest.raises(InvalidStatus) as caught:
            await connect(open_site.ws + "/live?" + query)
        return caught.value.response.status_code, caught.value.response.body.decode()

    assert asyncio.run(refusal("fps=0")) == (400, "/live?fps=0: must be a number from 0.1 to 60\n")
    assert asyncio.run(refusal("scale=x")) == (400, "/live?scale=x: must be a number from 1 to 1024\n")


def status_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "skyscreen_hw", *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_status_command_prints_the_report_readably_and_as_json(token_site: Site) -> None:
    cfg = str(token_site.daemon.config_path)
    text = status_cli("--config", cfg, "status", "--url", token_site.http)
    assert text.returncode == 0, text.stderr
    assert "30" in text.stdout and "768 LEDs (matrix)" in text.stdout and "live view" in text.stdout
    assert re.search(r"shared frame\s+shared frame\s+priority 100", text.stdout)
    raw = status_cli("--config", cfg, "status", "--url", token_site.ws + "/", "--json")
    assert raw.returncode == 0 and json.loads(raw.stdout)["leds"] == 768
    refused = status_cli("--config", cfg, "status", "--url", token_site.http, "--token", "wrong")
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"skyscreen-hw: error: {token_site.http}/status: HTTP 401 ")
    assert "give --token" in refused.stderr


def test_status_command_reads_url_and_token_from_the_configuration(
    display_name: str, daemon_factory, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as probe:  # a free port, written into the configuration both read
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    text = config(display_name, f'token = "{TOKEN}"\n').replace("port = 0", f"port = {port}")
    site = Site(daemon_factory(text))
    result = status_cli("--config", str(site.daemon.config_path), "status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("skyscreen-hw ")
    unreachable = status_cli("status", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 1 and "cannot reach http://127.0.0.1:9/status" in unreachable.stderr
