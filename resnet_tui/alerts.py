"""Sending a run's alerts (health.py) beyond the terminal: any service apprise knows.

Configured once per user in a small settings file (``~/.config/resnet-tui/alerts.json``, or
the file ``$RESNET_TUI_ALERTS`` names)::

    {"urls": ["ntfy://ntfy.sh/my-runs", "dbus://", "mailto://me:pw@example.org"],
     "kinds": ["failed", "completed", "diverging", "stalled", "overfitting", "learning_rate"]}

``urls`` are apprise URLs (Slack, Discord, ntfy, e-mail, a JSON webhook, a desktop notification
with ``dbus://`` or ``macosx://``); ``kinds`` which alerts go out (default: all but ``stopped``).
Sending happens in a background thread; a failure is logged, never raised: an alert must not
fail the run it is about.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from resnet_tui.health import Alert

log = logging.getLogger(__name__)
DEFAULT_KINDS = ("failed", "interrupted", "completed", "diverging", "stalled", "overfitting", "learning_rate")


def settings_path() -> Path:
    return Path(os.environ.get("RESNET_TUI_ALERTS") or Path.home() / ".config" / "resnet-tui" / "alerts.json")


class AlertSettingsError(ValueError):
    pass


@dataclass
class Notifier:
    urls: list[str] = field(default_factory=list)
    kinds: tuple[str, ...] = DEFAULT_KINDS
    failures: list[str] = field(default_factory=list)  # what could not be sent, in words
    sending: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def from_settings(cls, path: Path | None = None) -> Notifier:
        """The user's notifier; one that sends nothing when there is no settings file."""
        path = path or settings_path()
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise AlertSettingsError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        urls, kinds = raw.get("urls", []), raw.get("kinds", list(DEFAULT_KINDS))
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise AlertSettingsError(f"{path}: urls: expected a list of apprise URLs")
        unknown = sorted(set(kinds) - set(DEFAULT_KINDS) - {"stopped"}) if isinstance(kinds, list) else ["?"]
        if unknown:
            raise AlertSettingsError(f"{path}: kinds: unknown {', '.join(unknown)}; "
                                     f"allowed: {', '.join(DEFAULT_KINDS + ('stopped',))}")
        return cls(list(urls), tuple(kinds))

    def send(self, alert: Alert, run_id: str, config_name: str) -> threading.Thread | None:
        """Send ``alert`` in a background thread (returned, for tests to join); None when not sent."""
        if not self.urls or alert.kind not in self.kinds:
            return None
        title = f"resnet-tui: {config_name} {alert.kind}"
        body = f"run {run_id} ({config_name}): {alert.message}"
        thread = threading.Thread(target=self._deliver, args=(title, body, alert.severity), name="alert", daemon=True)
        thread.start()
        self.sending.append(thread)
        return thread

    def wait(self, timeout: float = 10.0) -> None:
        """Let alerts under way go out before the process exits (a slow service is not waited for long)."""
        for thread in self.sending:
            thread.join(timeout)

    def _deliver(self, title: str, body: str, severity: str) -> None:
        try:
            import apprise

            sender = apprise.Apprise()
            for url in self.urls:
                if not sender.add(url):
                    self._failed(f"not an apprise URL: {url}")
            kind = {"error": apprise.NotifyType.FAILURE, "warning": apprise.NotifyType.WARNING}.get(
                severity, apprise.NotifyType.INFO)
            if len(sender) and not sender.notify(title=title, body=body, notify_type=kind):
                self._failed(f"could not deliver '{title}' to every URL")
        except Exception as exc:  # an alert must never fail the run
            self._failed(f"sending '{title}' failed: {exc}")

    def _failed(self, what: str) -> None:
        self.failures.append(what)
        log.warning("alert: %s", what)
