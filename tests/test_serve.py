"""`resnet-tui serve`: the token, the Origin check and the session cap against a real
server on a loopback port (aiohttp as the client), the dashboard in a real headless
browser, and the one-line errors for a port or host it cannot listen on."""

import asyncio
import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest
from support import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
TOKEN = "test-token-7f3a9c"
FOREIGN = "http://evil.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port}")


class Served:
    """A real `resnet-tui serve` in its own process group; its console goes to a file."""

    def __init__(self, tmp_path: Path, *args: str):
        self.port = free_port()
        self.console_file = tmp_path / "serve-console.txt"
        with open(self.console_file, "wb") as console:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "resnet_tui.cli", "serve", "--port", str(self.port),
                 "--artifact", str(tmp_path / "art"), *args],
                # textual-serve's banner and access log are its own Rich console's, fitted to $COLUMNS.
                cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", RESNET_TUI_TOKEN=TOKEN, COLUMNS="200"),
                stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
        wait_listening(self.port)
        self.origin = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/ws"

    def console(self) -> str:
        return self.console_file.read_text()

    def app_processes(self) -> list[int]:
        """Pids whose parent is the server: the app processes textual-serve started."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                pids.append(int(stat.parent.name))
        return pids

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # a test may have killed them all already
            os.killpg(self.process.pid, signal.SIGKILL)  # the server and the apps it spawned
        self.process.wait(20)


@pytest.fixture
def served(tmp_path):
    servers = []

    def start(*args):
        servers.append(Served(tmp_path, *args))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


async def upgrade_refused(url: str, **headers) -> tuple[int, str]:
    """A WebSocket upgrade request; returns the refusal's status and body."""
    headers.update({"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()})
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        assert response.status != 101, f"{url} was accepted"
        return response.status, await response.text()


async def test_foreign_origin_is_refused_before_any_app_process_starts(served):
    server = served()
    for origin in (FOREIGN, "null", "http://127.0.0.1:1", f"http://localhost:{server.port}"):
        status, body = await upgrade_refused(f"{server.ws}?token={TOKEN}", Origin=origin)
        assert status == 403 and f"a page from {origin} may not open this dashboard" in body
    await asyncio.sleep(1.0)  # an app process would be forked by now
    assert server.app_processes() == []
    assert "refused a WebSocket from Origin 'http://evil.example'" in server.console()


async def test_missing_or_wrong_token_is_refused(served):
    server = served()
    cookie = f"resnet-tui-token-{server.port}"
    for url, headers in ((server.ws, {}), (f"{server.ws}?token=wrong", {}), (f"{server.ws}?token=", {}),
                         (server.ws, {"Cookie": f"{cookie}=wrong"}),
                         (server.ws, {"Cookie": f"resnet-tui-token-1={TOKEN}"})):  # another port's cookie
        status, body = await upgrade_refused(url, Origin=server.origin, **headers)
        assert status == 403 and "missing or wrong token" in body, (url, headers)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.origin}/") as page:
            assert page.status == 403 and "missing or wrong token" in await page.text()
        async with session.get(f"{server.origin}/?token=wrong") as page:
            assert page.status == 403
        # The right one: a cookie, and the same page without the token in its address.
        async with session.get(f"{server.origin}/?token={TOKEN}&fontsize=20", allow_redirects=False) as page:
            assert page.status == 303 and page.headers["Location"] == "/?fontsize=20"
            assert page.cookies[cookie].value == TOKEN and page.cookies[cookie]["samesite"] == "Strict"
        async with session.get(f"{server.origin}/?fontsize=20", headers={"Cookie": f"{cookie}={TOKEN}"}) as page:
            assert page.status == 200 and f'data-session-websocket-url="{server.ws}"' in await page.text()
    await asyncio.sleep(1.0)
    assert server.app_processes() == []


async def test_session_cap_holds_under_one_connection_too_many(served):
    server = served("--max-sessions", "2", "--allow-origin", "https://dash.example.org")
    cookie = {"Cookie": f"resnet-tui-token-{server.port}={TOKEN}"}
    async with aiohttp.ClientSession() as session:
        first = await session.ws_connect(f"{server.ws}?token={TOKEN}", headers={"Origin": server.origin})
        second = await session.ws_connect(server.ws, headers={"Origin": "https://dash.example.org", **cookie})
        deadline = time.monotonic() + 30
        while len(server.app_processes()) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        apps = server.app_processes()
        assert len(apps) == 2

        status, body = await upgrade_refused(server.ws, Origin=server.origin, **cookie)
        assert status == 503 and "2 dashboard sessions are open, the most --max-sessions allows" in body
        assert sorted(server.app_processes()) == sorted(apps)

        # The app processes never see the token, so they cannot log it.
        for pid in apps:
            environ = Path(f"/proc/{pid}/environ").read_bytes() + Path(f"/proc/{pid}/cmdline").read_bytes()
            assert TOKEN.encode() not in environ and b"RESNET_TUI_TOKEN" not in environ

        # A closed tab frees its place once its app process has quit.
        await first.close()
        third = None
        deadline = time.monotonic() + 90
        while third is None and time.monotonic() < deadline:
            try:
                third = await session.ws_connect(server.ws, headers={"Origin": server.origin, **cookie})
            except aiohttp.WSServerHandshakeError as refused:
                assert refused.status == 503
                await asyncio.sleep(0.5)
        assert third is not None, "the cap was not released when a session ended"
        await third.close()
        await second.close()
    assert server.console().count(TOKEN) == 1  # in the banner's URL only, not in the access log


def processes_naming(text: str) -> list[str]:
    """The live processes whose command line holds ``text``, as "pid: command line"."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes()
        except OSError:
            continue
        if text.encode() in words:
            shown = words.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{cmdline.parent.name}: {shown}")
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
async def test_app_processes_die_with_a_server_killed_with_sigkill(served, tmp_path):
    """kill -9 gives the server no chance to stop its app processes: they had gone on under
    init, each with the `sh` that textual-serve starts it with. Now the shell execs the app,
    and the kernel sends the app SIGTERM when the server dies."""
    server = served()
    artifact = str(tmp_path / "art")  # in the server's and each app's command line, no other process's
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{server.ws}?token={TOKEN}&width=120&height=40",
                                      headers={"Origin": server.origin})
        received = b""
        deadline = time.monotonic() + 60
        while b"Configs" not in received and time.monotonic() < deadline:  # the dashboard has painted
            with contextlib.suppress(asyncio.TimeoutError):
                message = await ws.receive(timeout=1)
                if message.type == aiohttp.WSMsgType.BINARY:
                    received += message.data
                elif message.type != aiohttp.WSMsgType.TEXT:
                    break
        assert b"Configs" in received, received[-500:]
        [app] = server.app_processes()
        command = Path(f"/proc/{app}/cmdline").read_bytes().split(b"\0")
        assert command[:3] == [sys.executable.encode(), b"-m", b"resnet_tui.cli"], command  # no shell
        assert len(processes_naming(artifact)) == 2, processes_naming(artifact)  # the server and its app

        server.process.kill()
        server.process.wait(20)
        deadline = time.monotonic() + 10
        while processes_naming(artifact) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert processes_naming(artifact) == []
        with contextlib.suppress(aiohttp.ClientError, OSError):
            await ws.close()


def test_a_malformed_request_is_logged_in_one_line_without_the_token(served):
    """aiohttp refuses a request with a bad header; textual-serve's Rich traceback with locals
    printed that request whole, token cookie included. Now: one line, the token "(token)"."""
    server = served()
    cookie = f"resnet-tui-token-{server.port}"
    requests = (
        f"GET / HTTP/1.1\r\nHost: x\r\nCookie: {cookie}={TOKEN}\0bad\r\n\r\n",  # a NUL in a header
        f"GET /?token={TOKEN} HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",  # a space in a name
        # Too long: aiohttp quotes the line's first 100 bytes, so the token's start and the rest cut off.
        f"GET / HTTP/1.1\r\nHost: x\r\nCookie: {cookie}={TOKEN}; other={'a' * 9000}\r\n\r\n",
    )
    for request in requests:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            client.sendall(request.encode())
            assert client.recv(100).split(b"\r\n")[0].endswith(b" 400 Bad Request")
    deadline = time.monotonic() + 10
    while server.console().count("Error handling request") < len(requests) and time.monotonic() < deadline:
        time.sleep(0.1)
    console = server.console()  # Rich may wrap a long line, at a space
    assert console.count("Error handling request") == len(requests), console
    assert "BadHttpMessage: 400, message: Invalid header value char:" in console
    assert "LineTooLong: 400" in console
    assert console.count(f"{cookie}=(token)") == 2, console  # the NUL's line, the long line's first 100 bytes
    assert console.count(TOKEN) == 1 and console.count(TOKEN[-6:]) == 1  # the banner's URL; none cut short
    for word in ("locals", "Traceback", "data_received", "self ="):
        assert word not in console, console


async def browse(url: str, screenshot: Path, debug_port: int) -> str:
    """Open ``url`` in headless Chromium, wait for the app to paint, save a
    screenshot; returns the terminal output the page received over its websocket."""

    # Chromium puts its SingletonSocket under $TMPDIR and gives up when that path passes a
    # Unix socket's 108 bytes ("Socket path too long"): its own short folder, whatever TMPDIR is.
    profile = tempfile.mkdtemp(prefix="chromium-", dir="/tmp")
    chrome_log = Path(profile) / "chromium.log"
    with chrome_log.open("wb") as log:  # Popen keeps its own copy of the file
        chrome = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1400,900", f"--remote-debugging-port={debug_port}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ, TMPDIR=profile))
    received: list[str] = []
    try:
        async with aiohttp.ClientSession() as session:
            targets = None
            for _ in range(300):
                try:
                    async with session.get(f"http://127.0.0.1:{debug_port}/json") as r:
                        targets = await r.json()
                    break
                except aiohttp.ClientError:
                    if chrome.poll() is not None:
                        break
                    await asyncio.sleep(0.1)
            if targets is None:
                chrome.kill()
                pytest.fail(f"Chromium's DevTools never answered (exit {chrome.wait()}): "
                            f"{chrome_log.read_text(errors='replace')[-1500:]}")
            page = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                ids = iter(range(1, 10**6))

                async def call(method, **params):
                    my = next(ids)
                    await ws.send_json({"id": my, "method": method, "params": params})
                    while True:
                        msg = await ws.receive_json()
                        if msg.get("method") == "Network.webSocketFrameReceived":
                            frame = msg["params"]["response"]
                            data = frame["payloadData"]
                            if frame.get("opcode") == 2:  # binary frames come base64-encoded
                                data = base64.b64decode(data).decode("utf-8", "replace")
                            received.append(data)
                        if msg.get("id") == my:
                            return msg.get("result", {})

                await call("Network.enable")
                await call("Page.enable")
                await call("Page.navigate", url=url)
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    # The page starts an app session by itself; (its Start button reloads the page).
                    await call("Runtime.evaluate", expression="1")
                    text = "".join(received)
                    if "Configs" in text and "m8_base" in text:
                        await asyncio.sleep(1.0)
                        break
                    await asyncio.sleep(0.5)
                await call("Runtime.evaluate", expression="1")  # drain frames that arrived meanwhile
                shot = await call("Page.captureScreenshot", format="png")
                screenshot.write_bytes(base64.b64decode(shot["data"]))
    finally:
        chrome.kill()
        chrome.wait()
        shutil.rmtree(profile, ignore_errors=True)
    return "".join(received)


@pytest.mark.slow
@needs_chromium
def test_serve_shows_the_dashboard_in_a_browser(served, tmp_path):
    """The tokened URL the banner prints; the page's own WebSocket carries the token in
    the cookie that first load set (the page it redirects to has none in its URL)."""
    server = served()
    url = re.search(r"http://\S+\?token=\S+", server.console()).group(0)
    assert url == f"{server.origin}/?token={TOKEN}"
    shot = tmp_path / "dashboard.png"
    text = asyncio.run(browse(url, shot, free_port()))
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text.replace("\\u001b", "\x1b"))
    assert "Configs" in plain and "m8_base" in plain and "m8_demo" in plain
    assert shot.stat().st_size > 30_000  # a painted dashboard, not the blank start page (~15 kB)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert server.console().count(TOKEN) == 1


def serve_fails(*args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "resnet_tui.cli", "serve", *args], cwd=REPO, check=False,
                          capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "Press Ctrl+C" not in output and "token=" not in output, output
    assert len(output.strip().splitlines()) == 1, output
    return done.returncode, output.strip()


def test_serve_on_a_port_in_use_says_so():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, message = serve_fails("--port", str(port))
    assert code == 2 and message == f"error: port {port} on 127.0.0.1 is already in use; choose another with --port"


def test_serve_on_a_port_over_65535_says_so():
    code, message = serve_fails("--port", "70000")
    assert code == 2 and message == "error: port 70000 is out of range (1-65535)"


def test_serve_on_an_unknown_host_says_so():
    # Brackets: glibc rejects the name without asking DNS (no network), and they
    # must reach the terminal literally, not as Rich markup.
    code, message = serve_fails("--host", "[bold]no-such-host")
    assert code == 2 and message.startswith("error: unknown host '[bold]no-such-host': ")
