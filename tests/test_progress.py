"""Progress on a non-terminal stderr: occasional plain lines, none for a short command."""

import io

from rich.console import Console

from s2tf_cli.progress import LogProgress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_lines_come_every_interval_with_counts_and_shares():
    out, clock = io.StringIO(), Clock()
    bar = LogProgress(Console(file=out, width=200), every=30, clock=clock)
    with bar:
        task = bar.add_task("training", total=None)
        bar.update(task, completed=5, total=100, description="visual loss 0.5")
        clock.now = 31
        bar.advance(task, 5)
        clock.now = 40
        bar.advance(task, 10)  # within the interval: no line
        clock.now = 62
        bar.advance(task, 1)
        other = bar.add_task("reading", total=None)
        clock.now = 100
        bar.advance(other, 3)
    assert out.getvalue().splitlines() == ["visual loss 0.5: 10/100 (10 %)", "visual loss 0.5: 21/100 (21 %)",
                                           "reading: 3"]  # fmt: skip


def test_a_short_run_prints_nothing():
    out = io.StringIO()
    with LogProgress(Console(file=out), every=30) as bar:
        bar.advance(bar.add_task("generating faces", total=1))
    assert out.getvalue() == ""
