"""A run's health, read from its events: diverging, stalled, a learning rate off, overfitting, its end.

One rule per class, as Keras' own callbacks are (terminate_on_nan.py, early_stopping.py);
:class:`HealthWatch` hands each rule the events a watcher gets (the trainer's, or a
follower's from the run files) and, for the stall rule, the time. Each rule speaks once
per episode. Pure Python over the plain events: the trainer records the alerts in its
result, the dashboard shows them (a health line, a bell, a toast) and sends them on
(alerts.py).
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from dataclasses import dataclass, field

from resnet_tui.events import EpochEnd, Event, IterationEnd, RunFinished, RunStarted, RunStatus


@dataclass(frozen=True)
class Alert:
    kind: str  # diverging | stalled | learning_rate | overfitting | completed | failed | stopped | interrupted
    message: str
    iteration: int
    severity: str = "warning"  # error | warning | information

    def record(self) -> dict[str, object]:
        return {"kind": self.kind, "message": self.message, "iteration": self.iteration}


class Rule:
    def see(self, event: Event) -> Alert | None:
        return None

    def tick(self, now: float) -> Alert | None:
        return None


class Diverging(Rule):
    """A non-finite loss at once; or the smoothed loss above ``factor`` times its lowest for
    ``patience`` iterations in a row (after ``warmup`` iterations, while it settles)."""

    def __init__(self, factor: float = 3.0, patience: int = 50, warmup: int = 50, smoothing: float = 0.9):
        self.factor, self.patience, self.warmup, self.smoothing = factor, patience, warmup, smoothing
        self.average: float | None = None
        self.lowest = math.inf
        self.above = 0
        self.said = False

    def see(self, event: Event) -> Alert | None:
        if not isinstance(event, IterationEnd) or self.said:
            return None
        if not math.isfinite(event.loss):
            self.said = True
            return Alert("diverging", f"loss is {event.loss} at iteration {event.iteration}", event.iteration, "error")
        self.average = event.loss if self.average is None else (
            self.smoothing * self.average + (1 - self.smoothing) * event.loss)
        if event.iteration < self.warmup:
            return None
        self.lowest = min(self.lowest, self.average)
        self.above = self.above + 1 if self.average > self.factor * self.lowest else 0
        if self.above >= self.patience:
            self.said = True
            return Alert("diverging", f"smoothed loss {self.average:.3g} is over {self.factor:g}x its lowest "
                                      f"({self.lowest:.3g}) for {self.patience} iterations", event.iteration, "error")
        return None


class Stalled(Rule):
    """No iteration for ``times`` the median step time (at least ``floor`` seconds) while the run
    is on: a hung input pipeline, a stopped process, a writer that stopped writing. Says it once
    until iterations come again. Pauses are the watcher's to exclude (it does not tick then)."""

    def __init__(self, times: float = 10.0, floor: float = 60.0, clock=time.monotonic):
        self.times, self.floor, self.clock = times, floor, clock
        self.last: float | None = None
        self.iteration = 0
        self.steps: deque[float] = deque(maxlen=200)  # the latest step times
        self.running = False
        self.said = False

    def see(self, event: Event) -> Alert | None:
        now = self.clock()
        if isinstance(event, RunStarted):
            self.running, self.last = True, now
        elif isinstance(event, IterationEnd):
            if self.last is not None and self.iteration:
                self.steps.append(now - self.last)
            self.last, self.iteration, self.said = now, event.iteration, False
        elif isinstance(event, EpochEnd):
            self.last = now  # validation is not a stall
        elif isinstance(event, RunFinished):
            self.running = False
        return None

    def limit(self) -> float:
        return max(self.floor, self.times * statistics.median(self.steps)) if self.steps else self.floor * 5

    def tick(self, now: float) -> Alert | None:
        if not self.running or self.said or self.last is None or now - self.last < self.limit():
            return None
        self.said = True
        return Alert("stalled", f"no iteration for {now - self.last:.0f} s since iteration {self.iteration} "
                                f"(steps take {statistics.median(self.steps) if self.steps else 0:.2g} s)",
                     self.iteration)


class LearningRateOff(Rule):
    """After the first ``epochs`` epochs, a loss more than ``rise`` above the first iteration's (it
    oscillated or climbed: the rate is likely too high; one batch's loss is noisy, hence the margin),
    or flat (less than ``drop`` below the first epoch's: too low to move, or too high to settle).
    The LR range test tells which rate fits."""

    def __init__(self, epochs: int = 3, drop: float = 0.02, rise: float = 0.2):
        self.epochs, self.drop, self.rise = epochs, drop, rise
        self.start: float | None = None  # the first iteration's loss: where an untrained model is
        self.first: float | None = None

    def see(self, event: Event) -> Alert | None:
        if isinstance(event, IterationEnd) and event.iteration == 1 and math.isfinite(event.loss):
            self.start = event.loss
        if not isinstance(event, EpochEnd) or not math.isfinite(event.loss):
            return None
        if event.epoch == 1:
            self.first = event.loss
        elif event.epoch == self.epochs and self.start is not None and event.loss > (1 + self.rise) * self.start:
            return Alert("learning_rate", f"loss above where it started after {self.epochs} epochs ({self.start:.3f} "
                                          f"-> {event.loss:.3f}): the learning rate is likely too high "
                                          f"(F9 on Configs: the range test)", event.iteration)
        elif event.epoch == self.epochs and self.first is not None and event.loss > (1 - self.drop) * self.first:
            return Alert("learning_rate", f"loss flat over the first {self.epochs} epochs ({self.first:.3f} -> "
                                          f"{event.loss:.3f}): the learning rate may be too low or too high "
                                          f"(F9 on Configs: the range test)", event.iteration)
        return None


class Overfitting(Rule):
    """Validation loss up ``epochs`` epochs in a row while the training loss went down."""

    def __init__(self, epochs: int = 3):
        self.epochs = epochs
        self.history: list[tuple[float, float]] = []
        self.said = False

    def see(self, event: Event) -> Alert | None:
        if not isinstance(event, EpochEnd) or event.val_loss is None or self.said:
            return None
        self.history.append((event.loss, event.val_loss))
        recent = self.history[-(self.epochs + 1):]
        if len(recent) <= self.epochs:
            return None
        val_up = all(b[1] > a[1] for a, b in zip(recent, recent[1:]))
        train_down = all(b[0] < a[0] for a, b in zip(recent, recent[1:]))
        if val_up and train_down:
            self.said = True
            return Alert("overfitting", f"validation loss rose {self.epochs} epochs in a row ({recent[0][1]:.3f} -> "
                                        f"{recent[-1][1]:.3f}) while the training loss fell", event.iteration)
        return None


class Ended(Rule):
    """How the run ended, with its last figures."""

    def see(self, event: Event) -> Alert | None:
        if not isinstance(event, RunFinished):
            return None
        figures = [f"{event.iterations} iterations, {event.epochs} epochs"]
        if event.best_val_accuracy is not None:
            figures.append(f"best val acc {event.best_val_accuracy:.2%}")
        if event.test_accuracy is not None:
            figures.append(f"test acc {event.test_accuracy:.2%}")
        severity = {RunStatus.COMPLETED: "information", RunStatus.STOPPED: "information"}.get(event.status, "error")
        reason = f": {event.stop_reason}" if event.stop_reason else ""
        return Alert(str(event.status), f"{event.status}{reason} ({', '.join(figures)})", event.iterations, severity)


@dataclass
class HealthWatch:
    """The rules over one run's events; ``alerts`` keeps what they said, in order."""

    rules: list[Rule] = field(default_factory=lambda: [Diverging(), Stalled(), LearningRateOff(), Overfitting(),
                                                       Ended()])
    alerts: list[Alert] = field(default_factory=list)

    def see(self, event: Event) -> list[Alert]:
        """What the rules say about ``event`` (and keep)."""
        return self._keep([rule.see(event) for rule in self.rules])

    def __call__(self, event: Event) -> None:  # a sink: the trainer's record of what was said
        self.see(event)

    def tick(self, now: float | None = None) -> list[Alert]:
        now = time.monotonic() if now is None else now
        return self._keep([rule.tick(now) for rule in self.rules])

    def _keep(self, said: list[Alert | None]) -> list[Alert]:
        new = [alert for alert in said if alert is not None]
        self.alerts.extend(new)
        return new

    def line(self) -> str:
        """The health line: the worst thing said while the run trains, else that it looks healthy."""
        problems = [a for a in self.alerts if a.kind in ("diverging", "stalled", "learning_rate", "overfitting")]
        if not problems:
            return "health: no problem seen (divergence, stalls, a flat loss, overfitting)"
        worst_first = sorted(problems[-2:], key=lambda a: a.severity != "error")  # a long line is cut at its end
        return "health: " + " · ".join(f"{a.kind}: {a.message}" for a in worst_first)
