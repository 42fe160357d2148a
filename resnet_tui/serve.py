"""`resnet-tui serve`: the dashboard in a web browser, one app process per tab.

textual-serve starts an app process for every WebSocket opened to ``/ws``; it
has no authentication and does not look at the ``Origin`` header. Browsers let
any web site open a WebSocket to 127.0.0.1, so without more any page the user
has open could drive the dashboard (cross-site WebSocket hijacking; loopback is
no boundary against it). ``DashboardServer`` subclasses textual-serve's
``Server`` and overrides its route handlers (``/``, ``/ws``, ``/download``)
rather than forking it:

- a per-server token, random unless given (``--token`` or ``RESNET_TUI_TOKEN``),
  in the URL the banner prints; the first page load with ``?token=`` stores it
  in a strict same-site cookie and redirects to the page without it (as Jupyter
  does); the page's own WebSocket then carries the cookie. Scripts may pass
  ``?token=`` on ``/ws`` instead;
- the upgrade's ``Origin`` must name the host the request was sent to (or be
  listed with ``--allow-origin``), else 403. The token, not this check, is what
  stops DNS rebinding (the attacker's name then points at us, Origin == Host);
- at most ``max_sessions`` app processes at once, else 503.

Every refusal happens before an app process starts. Static files (textual-serve's
own JS, CSS and fonts) stay public.

On Linux an app process dies with the server, even a server killed with
``kill -9`` (see ``dashboard_command``). The server's log never holds the
token, and an exception is logged as one line, never as a traceback with its
locals (textual-serve installs Rich tracebacks with locals, which printed a
malformed request whole, cookie and all).
"""

from __future__ import annotations

import errno
import hmac
import logging
import os
import re
import secrets
import shlex
import socket
import sys
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
from aiohttp import web
from rich.logging import RichHandler
from rich.markup import escape
from textual_serve.server import LogHighlighter, Server, to_int

from resnet_tui.report.console import CliConsole

TOKEN_ENV = "RESNET_TUI_TOKEN"
DEFAULT_MAX_SESSIONS = 4
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

log = logging.getLogger("resnet-tui.serve")


class ServeError(Exception):
    """Why the server cannot start, in one line for the user."""


def serve(*, host: str, port: int, artifact: str | None = None, read_only: bool = False,
          token: str | None = None, allowed_origins: list[str] | tuple[str, ...] = (),
          max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
    """Check everything that can fail, then serve until Ctrl+C."""
    if max_sessions < 1:
        raise ServeError(f"--max-sessions must be at least 1, got {max_sessions}")
    check_can_listen(host, port)
    token = resolve_token(token)
    # App processes inherit this environment: keep the token out of their reach (and their logs).
    os.environ.pop(TOKEN_ENV, None)
    if not read_only and host not in LOOPBACK_HOSTS:
        CliConsole(stderr=True).print(
            f"[yellow]warning:[/] serving on {escape(host)}: anyone who can reach this port and has the "
            "token can start and stop training, and the token travels unencrypted (no TLS). Prefer an SSH "
            "tunnel to a loopback server, or --read-only.")
    server = DashboardServer(dashboard_command(artifact, read_only, os.getpid()), host=host, port=port, token=token,
                             allowed_origins=allowed_origins, max_sessions=max_sessions)
    server.serve()


def resolve_token(given: str | None) -> str:
    """``--token``, else ``$RESNET_TUI_TOKEN``, else a fresh random one."""
    token = given if given is not None else os.environ.get(TOKEN_ENV)
    if token is None:
        return secrets.token_urlsafe(32)
    if not token.strip():
        raise ServeError(f"the token (--token or ${TOKEN_ENV}) is empty")
    return token


def check_can_listen(host: str, port: int) -> None:
    """Fail now, in one line, where aiohttp would fail after printing its banner."""
    if not 1 <= port <= 65535:
        raise ServeError(f"port {port} is out of range (1-65535)")
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"unknown host {host!r}: {exc.strerror}") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # As aiohttp's listening socket does, so a port in TIME_WAIT is not taken for busy.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ServeError(f"port {port} on {host} is already in use; choose another with --port") \
                        from None
                raise ServeError(f"cannot listen on {host} port {port}: {exc.strerror}") from None


# Run by the app process before it becomes the dashboard: ask the kernel for SIGTERM when the
# server dies (PR_SET_PDEATHSIG = 1), then make sure the server had not died already, then
# exec the dashboard. The setting survives exec (it is only cleared on fork), so the app keeps it.
# SIGTERM rather than SIGKILL: a dashboard that is training saves the run and records it as
# stopped (SIGTERM), as it does for a service manager.
DIE_WITH_SERVER = """\
import ctypes, os, signal, sys
server, argv = int(sys.argv[1]), sys.argv[2:]
if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0) != 0:
    sys.exit("resnet-tui serve: prctl(PR_SET_PDEATHSIG) failed: " + os.strerror(ctypes.get_errno()))
if os.getppid() != server:
    sys.exit("resnet-tui serve: the server has gone; not starting the dashboard")
os.execv(argv[0], argv)
"""


def dashboard_command(artifact: str | None, read_only: bool, server_pid: int | None = None) -> str:
    """The shell command each browser tab's app process runs.

    textual-serve runs it with ``sh -c``; ``exec`` replaces that shell with the app, so no
    shell is left behind. On Linux, with the server's pid, the app first asks to be sent
    SIGTERM when the server dies, however it dies: a process group the server kills on its
    way out would not cover ``kill -9``, and such an app would go on under init."""
    command = [sys.executable, "-m", "resnet_tui.cli"]
    if artifact:
        command += ["--artifact", artifact]
    if read_only:
        command.append("--read-only")
    if server_pid is not None and sys.platform.startswith("linux"):
        # -I: the launcher imports only the standard library, never a module from the cwd.
        command = [sys.executable, "-I", "-c", DIE_WITH_SERVER, str(server_pid), *command]
    return "exec " + shlex.join(command)


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class DashboardServer(Server):
    """textual-serve's server with a token, an Origin check and a cap on app processes."""

    def __init__(self, command: str, *, host: str, port: int, token: str,
                 allowed_origins: list[str] | tuple[str, ...] = (), max_sessions: int = DEFAULT_MAX_SESSIONS):
        super().__init__(command, host=host, port=port, title="resnet-tui")
        self.token = token
        self.allowed_origins = {origin.rstrip("/").lower() for origin in allowed_origins}
        self.max_sessions = max_sessions
        self.open_sessions = 0
        # Cookies ignore ports: one name per port, so two servers on one host keep their own.
        self.cookie_name = f"resnet-tui-token-{port}"

    # --- checks -----------------------------------------------------------------------------

    def has_token(self, request: web.Request) -> bool:
        expected = self.token.encode()
        offered = (request.query.get("token"), request.cookies.get(self.cookie_name))
        return any(hmac.compare_digest(given.encode(), expected) for given in offered if given)

    def require_token(self, request: web.Request) -> None:
        if not self.has_token(request):
            log.warning("refused %s %s: missing or wrong token", request.method, request.path)
            raise web.HTTPForbidden(text="resnet-tui serve: missing or wrong token. Open the URL with "
                                         "?token=... that `resnet-tui serve` printed when it started.\n")

    def check_origin(self, request: web.Request) -> None:
        """A browser always sends Origin with a WebSocket; only non-browser clients omit it."""
        origin = request.headers.get("Origin")
        if origin is None or origin.rstrip("/").lower() in self.allowed_origins:
            return
        if urlsplit(origin).netloc.lower() == request.host.lower():
            return
        log.warning("refused a WebSocket from Origin %r (this server is %r)", origin, request.host)
        raise web.HTTPForbidden(text=f"resnet-tui serve: a page from {origin} may not open this dashboard "
                                     f"(not this server's origin; see --allow-origin).\n")

    # --- routes -----------------------------------------------------------------------------

    async def handle_index(self, request: web.Request) -> web.Response:
        """The page, with its URLs on the host it was requested by: textual-serve builds them
        from --host, so a page opened as http://localhost would connect to ws://127.0.0.1,
        another origin, which the Origin check refuses."""
        self.require_token(request)
        if "token" in request.query:
            # From here on the cookie carries the token: out of the address bar, history and Referer.
            redirect = web.HTTPSeeOther(request.rel_url.without_query_params("token"))
            redirect.set_cookie(self.cookie_name, self.token, httponly=True, samesite="Strict",
                                secure=request.secure)
            raise redirect
        scheme = "wss" if request.secure else "ws"
        context = {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{scheme}://{request.host}/ws",
            "config": {"static": {"url": "/static/"}},
            "application": {"name": self.title},
        }
        return aiohttp_jinja2.render_template("app_index.html", request, context)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        self.check_origin(request)
        self.require_token(request)
        if self.open_sessions >= self.max_sessions:
            log.warning("refused a session: %d open, --max-sessions is %d", self.open_sessions, self.max_sessions)
            raise web.HTTPServiceUnavailable(
                text=f"resnet-tui serve: {self.open_sessions} dashboard sessions are open, the most "
                     f"--max-sessions allows; close a tab, or restart the server with a larger "
                     f"--max-sessions.\n")
        # No await between the check and the count, so concurrent upgrades cannot both pass.
        self.open_sessions += 1
        try:
            return await super().handle_websocket(request)
        finally:
            self.open_sessions -= 1

    async def handle_download(self, request: web.Request) -> web.StreamResponse:
        self.require_token(request)
        return await super().handle_download(request)

    # --- console ----------------------------------------------------------------------------

    def url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}/?token={quote(self.token, safe='')}"

    def initialize_logging(self) -> None:
        """textual-serve's Rich log, without its tracebacks: they showed each frame's locals, and
        a malformed request's locals hold the request whole, the token cookie included. Every
        record, aiohttp's and asyncio's too, passes through ``TokenRedactor`` on the handler:
        the access log prints each request line, query string and all."""
        handler = RichHandler(show_path=False, show_time=False, rich_tracebacks=False,
                              tracebacks_show_locals=False, highlighter=LogHighlighter(), console=self.console)
        handler.addFilter(TokenRedactor(self.token))
        logging.basicConfig(level="DEBUG" if self.debug else "INFO", format="%(message)s", handlers=[handler],
                            force=True)

    async def on_startup(self, app: web.Application) -> None:
        self.console.print(f"resnet-tui dashboard: one app process per browser tab, "
                           f"at most {self.max_sessions} at once. Open", highlight=False)
        self.console.print(f"    {escape(self.url())}", soft_wrap=True, highlight=False)
        self.console.print("[cyan]Press Ctrl+C to quit")


# A token's value after ``token=`` or our cookie's name, even cut short (aiohttp quotes the first
# 100 bytes of a header line too long) or wrong: whatever follows, up to a separator or quote.
TOKEN_VALUE = re.compile(r"((?:\btoken|resnet-tui-token-\d+)=)[^\s&;,'\"\\]+")


class TokenRedactor(logging.Filter):
    """Makes each log record one line without the token: the token (as given and URL-quoted)
    and any value given as ``token=`` or in a token cookie become "(token)"; an exception
    becomes its type, message and the place it was raised, appended to the message, and
    the record keeps no traceback, so no handler can print one, nor its locals."""

    def __init__(self, token: str):
        super().__init__()
        self.forms = {token, quote(token, safe="")}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message}: {one_line(record.exc_info[1])}"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        record.msg, record.args = self.scrub(message), ()
        return True

    def scrub(self, text: str) -> str:
        for form in self.forms:
            text = text.replace(form, "(token)")
        return TOKEN_VALUE.sub(r"\1(token)", text)


def one_line(error: BaseException) -> str:
    """``LineTooLong: 400, message: Got more than ... (at web_protocol.py:446)``."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    frames = error.__traceback__
    while frames is not None and frames.tb_next is not None:
        frames = frames.tb_next
    if frames is not None:
        text += f" (at {os.path.basename(frames.tb_frame.f_code.co_filename)}:{frames.tb_lineno})"
    return text
