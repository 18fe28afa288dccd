"""Progress: bars per stage and per month/fold on a terminal, stage lines in logs, silence for scripts."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from rapidseval.jobs.progress import Reporter, RichReporter, default_reporter


def _console(terminal: bool) -> Console:
    return Console(file=io.StringIO(), force_terminal=terminal, width=120, color_system=None)


def _work(rep: Reporter) -> None:
    rep.log("backend: cpu")
    with rep.stage("score + reduce", total=4, unit="part", items={"2020-02": 2, "2020-03": 2}) as st:
        for month in ("2020-02", "2020-02", "2020-03", "2020-03"):
            st.advance(item=month)
    with rep.stage("backtest", total=2, unit="fold") as st:
        for origin in ("2019-06", "2019-07"):
            with st.item(f"origin {origin}", total=3) as it:
                for _ in range(3):
                    it.advance()
            st.advance()


@pytest.mark.parametrize("terminal", [True, False])
def test_stage_lines_with_counts_and_times(terminal):
    rep = RichReporter(_console(terminal))
    _work(rep)
    out = rep.console.file.getvalue()
    assert "backend: cpu" in out
    done = re.findall(r"✓ (\S.*?)\s+(\d+) (\w+)\s+(\d+\.\d) s", out)  # after any cursor-control codes
    assert [(name, int(n), unit) for name, n, unit, _s in done] == [("score + reduce", 4, "parts"), ("backtest", 2, "folds")], out
    assert [name for name, _s, ok in rep.stages] == ["score + reduce", "backtest"]
    assert all(ok and s >= 0 for _n, s, ok in rep.stages)
    if terminal:  # the live bars drew one line per month and per fold while they ran
        assert "2020-03" in out and "origin 2019-07" in out
    else:  # logs get the stage lines only, no bar drawing
        assert "━" not in out and "origin 2019-07" not in out


def test_a_failing_stage_is_marked_and_the_error_propagates():
    rep = RichReporter(_console(False))
    with pytest.raises(RuntimeError, match="boom"):
        with rep.stage("train", total=1):
            raise RuntimeError("boom")
    out = rep.console.file.getvalue()
    assert out.startswith("✗ train") and rep.stages[0][2] is False


def test_silent_reporter_accepts_the_same_calls(capsys):
    rep = default_reporter(quiet=True)
    assert type(rep) is Reporter
    _work(rep)
    assert capsys.readouterr() == ("", "")
    assert isinstance(default_reporter(), RichReporter)
