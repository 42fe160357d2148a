"""`resnet-tui serve`: the dashboard in a real (headless) browser, over loopback."""

import asyncio
import base64
import json
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

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


async def browse(url: str, screenshot: Path, debug_port: int) -> str:
    """Open ``url`` in headless Chromium, wait for the app to paint, save a
    screenshot; returns the terminal output the page received over its websocket."""
    import aiohttp

    profile = tempfile.mkdtemp()
    chrome = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--window-size=1400,900", f"--remote-debugging-port={debug_port}",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    received: list[str] = []
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(f"http://127.0.0.1:{debug_port}/json") as r:
                        targets = await r.json()
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
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


def test_serve_shows_the_dashboard_in_a_browser(tmp_path):
    port, debug_port = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "resnet_tui.cli", "serve", "--port", str(port), "--artifact", str(tmp_path / "art")],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        shot = tmp_path / "dashboard.png"
        text = asyncio.run(browse(f"http://127.0.0.1:{port}/", shot, debug_port))
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # the server and the app it spawned for the tab
        server.wait(20)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text.replace("\\u001b", "\x1b"))
    assert "Configs" in plain and "m8_base" in plain and "m8_demo" in plain
    assert shot.stat().st_size > 30_000  # a painted dashboard, not the blank start page (~15 kB)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
