"""What every dashboard screen shares: a footer that keeps the app's keys in view."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from textual import events, on
from textual.binding import ActiveBinding
from textual.screen import Screen

if TYPE_CHECKING:
    from textual import getters

    from resnet_tui.tui.app import ResnetTuiApp


class DashboardScreen(Screen):
    """A screen whose footer shows the app's F-keys first and ^q last, and between them as
    many of the screen's own keys as the width leaves room for, whole: a narrow terminal
    never cuts F5/F6/F7, and F1 lists every key."""

    if TYPE_CHECKING:  # the app the screens read (chart_options): typed only, Textual's property at run time
        app = getters.app(ResnetTuiApp)

    # App keys shown only where the width leaves room after the screen's own (F1 lists them all).
    SPARE_APP_KEYS = ("f8",)

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        bindings = super().active_bindings
        app_keys = {k: b for k, b in bindings.items() if b.node is self.app and k not in self.SPARE_APP_KEYS}
        room = self.size.width - sum(self._footer_cells(b) for b in app_keys.values())
        screen_keys = {}
        for key, active in bindings.items():
            if key in app_keys:
                continue
            room -= self._footer_cells(active)
            training_key = key in ("f5", "f6", "f7")  # a screen's own start/stop (Sweeps) stays in view as the app's
            if room < 0 and active.binding.show and not training_key:  # out of the footer only: the key still works
                active = active._replace(binding=dataclasses.replace(active.binding, show=False))
            screen_keys[key] = active
        first = {k: b for k, b in app_keys.items() if not b.binding.priority}
        last = {k: b for k, b in app_keys.items() if b.binding.priority}  # ^q
        return first | screen_keys | last

    def _footer_cells(self, active: ActiveBinding) -> int:
        """Cells a key takes in a compact footer: "F5 Start" and a space (none when hidden)."""
        binding = active.binding
        return len(self.app.get_key_display(binding)) + len(binding.description) + 2 if binding.show else 0

    @on(events.Resize)
    def _refit_footer(self) -> None:
        self.refresh_bindings()
