"""Progress on stderr: a redrawn bar on a terminal, a plain line every few seconds in logs."""

from __future__ import annotations

import sys
import time


class Progress:
    """Callable as progress(done, total); call close() when the work ends."""

    def __init__(self, label: str = "scanning", stream=None, interval: float | None = None):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.is_terminal = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval if interval is not None else (0.1 if self.is_terminal else 5.0)
        self.started = time.monotonic()
        self._last_draw = self.started
        self._last_line = ""
        self._done = self._total = 0

    def __call__(self, done: int, total: int) -> None:
        self._done, self._total = done, total
        now = time.monotonic()
        if done < total and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        self._draw(now)

    def _draw(self, now: float) -> None:
        done, total = self._done, self._total
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        fraction = done / total if total else 1.0
        remaining = (total - done) / rate if rate > 0 else 0.0
        if self.is_terminal:
            filled = int(28 * fraction)
            bar = "#" * filled + "." * (28 - filled)
            line = (
                f"\r{self.label} [{bar}] {done}/{total} {fraction:4.0%} "
                f"{rate:6.0f} files/s ETA {remaining:4.0f}s"
            )
            self.stream.write(line)
            self._last_line = line
        else:
            self.stream.write(
                f"{self.label}: {done}/{total} files ({fraction:.0%}), {rate:.0f} files/s\n"
            )
        self.stream.flush()

    def close(self) -> None:
        """Finish the line (a terminal bar is cleared so later messages start clean)."""
        if self.is_terminal and self._last_line:
            self.stream.write("\r" + " " * len(self._last_line) + "\r")
            self.stream.flush()
        elapsed = time.monotonic() - self.started
        if self._total:
            self.stream.write(
                f"{self.label}: {self._done} files in {elapsed:.1f}s "
                f"({self._done / max(elapsed, 1e-9):.0f} files/s)\n"
            )
            self.stream.flush()
