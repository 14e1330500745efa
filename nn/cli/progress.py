"""Training progress on a text stream, and Ctrl-C as a request to stop."""

from __future__ import annotations

import shutil
import signal
import time
from typing import Any, TextIO

from nn.cli.common import fmt_duration, fmt_num, fmt_pct
from nn.services.control import JobControl


class Progress:
    """Training progress on a text stream.

    On a terminal: one line redrawn with ``\\r`` (epoch x/y, a bar over the epoch's batches, the
    epoch's running loss and accuracy, the last validation accuracy, images/s, time left) plus a
    line per finished epoch.
    Elsewhere (a log file, a pipe): only the line per epoch.
    """

    BAR = 20

    def __init__(
        self,
        stream: TextIO,
        n_train: int,
        batch_size: int,
        *,
        live: bool | None = None,
        min_interval: float = 0.1,
    ):
        self.stream = stream
        self.n_train = int(n_train)
        self.batch_size = int(batch_size)
        isatty = getattr(stream, "isatty", lambda: False)
        self.live = bool(isatty()) if live is None else live
        self.min_interval = min_interval
        self._last_draw = 0.0
        self._drawn = 0
        self._first_epoch: int | None = None
        self._epochs_done = 0
        self._last_val: float | None = None
        self._last_elapsed = 0.0
        self._loss_sum, self._loss_n = 0.0, 0

    def __call__(self, event: Any) -> None:
        if self._first_epoch is None:
            self._first_epoch = event.epoch
        if event.kind == "batch":
            self._batch(event)
        elif event.kind == "epoch":
            self._epoch(event)

    def _eta(self, event: Any, done_in_epoch: int) -> float | None:
        run_epochs = event.epochs - self._first_epoch + 1
        total = run_epochs * self.n_train
        done = self._epochs_done * self.n_train + done_in_epoch
        if done <= 0 or event.elapsed <= 0:
            return None
        rate = done / event.elapsed  # includes validation passes
        return max(0.0, (total - done) / rate)

    def _width(self) -> int:
        return max(40, shutil.get_terminal_size((100, 20)).columns - 1)

    def _batch(self, event: Any) -> None:
        if not self.live:
            return
        if event.batch == 1:
            self._loss_sum, self._loss_n = 0.0, 0
        self._loss_sum += event.loss
        self._loss_n += 1
        now = time.monotonic()
        if now - self._last_draw < self.min_interval and event.batch != event.n_batches:
            return
        self._last_draw = now
        done = min(event.batch * self.batch_size, self.n_train)
        filled = int(self.BAR * event.batch / max(event.n_batches, 1))
        bar = "#" * filled + "." * (self.BAR - filled)
        width = len(str(event.epochs))
        line = (
            f"epoch {event.epoch:>{width}}/{event.epochs} [{bar}] "
            f"{event.batch}/{event.n_batches}  loss {self._loss_sum / self._loss_n:.4f}  "
            f"acc {fmt_pct(event.train_accuracy)}  val {fmt_pct(self._last_val)}  "
            f"{event.samples_per_second:,.0f} img/s  "
            f"ETA {fmt_duration(self._eta(event, done))}"
        )
        self._draw(line)

    def _draw(self, line: str) -> None:
        line = line[: self._width()]
        pad = max(0, self._drawn - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._drawn = len(line)

    def _clear(self) -> None:
        if self.live and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self._drawn = 0

    def _epoch(self, event: Any) -> None:
        self._epochs_done += 1
        self._last_val = event.val_accuracy
        seconds = event.elapsed - self._last_elapsed
        self._last_elapsed = event.elapsed
        width = len(str(event.epochs))
        parts = [
            f"epoch {event.epoch:>{width}}/{event.epochs}",
            f"loss {event.loss:.4f}",
            f"acc {fmt_pct(event.train_accuracy)}",
        ]
        if event.val_accuracy is not None:
            parts += [
                f"val_loss {fmt_num(event.val_loss)}",
                f"val_acc {fmt_pct(event.val_accuracy)}",
            ]
        parts += [
            f"lr {event.learning_rate:.3g}",
            f"{seconds:.1f}s",
            f"{event.samples_per_second:,.0f} img/s",
        ]
        eta = self._eta(event, 0)
        if eta and event.epoch < event.epochs:
            parts.append(f"ETA {fmt_duration(eta)}")
        self._clear()
        self.stream.write("  ".join(parts) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._clear()
        self.stream.flush()


class StopOnInterrupt:
    """First Ctrl-C or SIGTERM (what ``kill`` and service managers send): ask the job to stop
    after the current batch (``control.stop``), so its run is recorded as stopped. Second:
    KeyboardInterrupt."""

    SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}

    def __init__(self, stream: TextIO | None, control: JobControl):
        self.control = control
        self.stream = stream
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.control.stop_requested:
            raise KeyboardInterrupt
        how = self.SIGNALS.get(signum, "a signal")
        self.control.stop(f"stopped with {how}")
        if self.stream is not None:
            self.stream.write(f"\nstopping after this batch ({how} again aborts)\n")
            self.stream.flush()

    def __enter__(self) -> StopOnInterrupt:
        try:
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread: Ctrl-C stays a KeyboardInterrupt
            pass
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
