from __future__ import annotations


class BacktestResult:
    pass


def backtest(*args, **kwargs):
    raise NotImplementedError
