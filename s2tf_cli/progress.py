"""Progress where no bar can be drawn (stderr is a log file, nohup, CI): a plain line now and then.

Rich draws nothing on a non-terminal, so a long `train`, `syncnet` or `data prepare` run in the
background would otherwise be silent until it ends. Short commands print nothing (the first line comes
only after `every` seconds), so a quick error is still the only line.
"""

from __future__ import annotations

import time


class LogProgress:
    """The part of rich.progress.Progress the CLI uses, as occasional log lines."""

    def __init__(self, console, every: float = 30.0, clock=time.monotonic):
        self.console, self.every, self.clock = console, every, clock
        self.tasks: list[dict] = []
        self.last = clock()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: float | None = None) -> int:
        self.tasks.append({"description": description, "total": total, "completed": 0})
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, completed=self.tasks[task]["completed"] + advance)

    def update(self, task: int, completed: float | None = None, total: float | None = None,
               description: str | None = None) -> None:  # fmt: skip
        t = self.tasks[task]
        for key, value in (("completed", completed), ("total", total), ("description", description)):
            if value is not None:
                t[key] = value
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            done, total = t["completed"], t["total"]
            share = f" ({100 * done / total:.0f} %)" if total else ""
            self.console.print(f"{t['description']}: {done:g}{f'/{total:g}' if total else ''}{share}",
                               highlight=False, markup=False, soft_wrap=True)  # fmt: skip
