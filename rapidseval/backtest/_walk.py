"""The policy walk: one retraining policy replayed over the origins, as a request/resolve loop.

A walk goes origin after origin.  At each origin after the first it builds the
:class:`~rapidseval.backtest.DecisionContext` of what was known then and asks the policy to
keep the model in force or to retrain; the rows it writes say which model governed each
month (:class:`PolicyMonth`).

A decision needs facts: the metrics of the model in force on its labelled months and the
drift signals of the months seen since the previous decision (only those the policy says it
reads, :func:`~rapidseval.backtest.register_policy`); a row needs its model's scores on its
month.  The walk computes none of them.  :meth:`PolicyWalk.advance` goes as far as the
caller's :class:`Evidence` allows and returns what it lacks (:class:`Needs`); the caller
resolves it (the backtest job scores on Dask workers, the in-memory engine directly) and
calls ``advance`` again: the walk continues from the decision it stopped at.
:func:`walk_policies` is that loop for several walks at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Protocol, Sequence

from ..core.errors import RapidsEvalError
from ..core.time import month_from_index, month_index, months_between
from ._drift import DriftSignal
from ._policies import DecisionContext, Policy, policy_reads
from ._split import Fold

__all__ = ["ModelMonth", "ModelPlan", "Needs", "Evidence", "PolicyMonth", "PolicyWalk", "walk_policies",
           "decision_spans"]


class ModelMonth(NamedTuple):
    """A model (by key) on one calendar month: the unit scores and drift signals are computed for."""

    model_key: str
    month: str


@dataclass(frozen=True)
class ModelPlan:
    """The model of one fold, identified by ``key`` (equal keys: the same fitted model)."""

    key: str
    fold: Fold


@dataclass(frozen=True)
class Needs:
    """What a walk lacks to go on: (model, month) scores, and drift signals of (model, month)."""

    scores: frozenset[ModelMonth] = frozenset()
    drift: frozenset[ModelMonth] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.scores or self.drift)

    def __or__(self, other: "Needs") -> "Needs":
        return Needs(self.scores | other.scores, self.drift | other.drift)

    @property
    def pairs(self) -> frozenset[ModelMonth]:
        """Every (model, month) named, whatever is needed of it."""
        return self.scores | self.drift


class Evidence(Protocol):
    """What the caller knows so far, and gives a walk."""

    def has_scores(self, pair: ModelMonth) -> bool:
        """Whether the model's confusion counts on the month are known."""

    def has_drift(self, pair: ModelMonth) -> bool:
        """Whether the month's drift signal against the model's training months is known."""

    def metrics(self, pair: ModelMonth) -> Mapping[str, Any]:
        """``n, tp, fp, fn, tn, precision, recall, f1, accuracy, ...`` of a known pair."""

    def drift(self, pair: ModelMonth) -> DriftSignal:
        """The drift signal of a known pair."""


@dataclass(frozen=True)
class PolicyMonth:
    """One month under one policy: the model that governed it and why it was (re)trained."""

    policy: str
    model_key: str
    origin: str  # the origin the governing model was trained for
    train_start: str
    train_end: str
    eval_month: str
    model_age_months: int
    retrained: bool
    retrain_reason: str
    trigger_month: str  # the month whose drift signal triggered the retrain ("" otherwise)
    trigger_true: bool | None  # whether the generator changed something then (None: unknown)

    def to_row(self) -> dict[str, Any]:
        """The row of the backtest table (without the metrics and the training time)."""
        row = asdict(self)
        del row["model_key"]
        return row


def decision_spans(plans: Sequence[ModelPlan]) -> list[tuple[str, ...]]:
    """Months each origin's decision governs: up to the next origin (the last one: its horizon)."""
    spans = []
    for i, plan in enumerate(plans):
        if i + 1 < len(plans):
            first, stop = month_index(plan.fold.origin), month_index(plans[i + 1].fold.origin)
            spans.append(tuple(month_from_index(j) for j in range(first, stop)))
        else:
            spans.append(plan.fold.eval)
    return spans


@dataclass(frozen=True)
class _Decision:
    reason: str | None  # why the model is retrained (None: kept)
    trigger_month: str = ""


class PolicyWalk:
    """One policy replayed over the origins of ``plans`` (see the module's docstring).

    Parameters
    ----------
    label : str
        The policy's name in the tables.
    decide : callable
        ``decide(ctx) -> reason or None`` (:func:`~rapidseval.backtest.make_policy`).
    plans : sequence of ModelPlan
        One model per origin, in calendar order.
    metric, floor, label_delay
        What the policy is told (:class:`~rapidseval.backtest.DecisionContext`).
    reads : iterable of {"metrics", "drift"}, optional
        The facts the policy reads; default: those its kind declared
        (:func:`~rapidseval.backtest.register_policy`), else both.
    truth : callable, optional
        ``truth(train months, month) -> bool``: whether the data really changed between the
        model's training months and the month whose drift signal triggered a retrain.
    """

    def __init__(self, label: str, decide: Policy, plans: Sequence[ModelPlan], *, metric: str, floor: float,
                 label_delay: int, reads: Iterable[str] | None = None,
                 truth: Callable[[tuple[str, ...], str], bool] | None = None):
        self.label = label
        self.decide = decide
        self.plans = list(plans)
        self.metric, self.floor, self.label_delay = metric, floor, label_delay
        self.reads = frozenset(policy_reads(decide) if reads is None else reads)
        self.truth = truth
        self._spans = decision_spans(self.plans)
        self._next = 0  # the next origin to decide at
        self._current: int | None = None  # the plan of the model in force
        self._rows: list[PolicyMonth] = []

    @property
    def finished(self) -> bool:
        """Every origin decided (the rows' scores may still be wanted: see :meth:`advance`)."""
        return self._next == len(self.plans)

    def rows(self) -> list[PolicyMonth]:
        """The walk's months so far, in calendar order."""
        return list(self._rows)

    def advance(self, evidence: Evidence) -> Needs:
        """Decide as far as ``evidence`` allows; return what is lacking (empty: the walk is done,
        every decision made and every row's scores known)."""
        while not self.finished:
            needs = self._decision_needs(self._next, evidence)
            if needs:
                return needs | self._row_needs(evidence)
            self._take(self._next, self._decide(self._next, evidence))
            self._next += 1
        return self._row_needs(evidence)

    # -- one decision ---------------------------------------------------------------------
    def _labelled(self, origin: str) -> tuple[str, ...]:
        """Months since the model in force's origin whose labels are known at ``origin``."""
        model_origin = self.plans[self._current].fold.origin
        last = month_index(origin) - 1 - self.label_delay
        return tuple(month_from_index(j) for j in range(month_index(model_origin), last + 1))

    def _drift_months(self, i: int) -> tuple[str, ...]:
        """Months seen since the previous decision: the previous origin .. the month before this one."""
        previous, origin = self.plans[i - 1].fold.origin, self.plans[i].fold.origin
        return tuple(month_from_index(j) for j in range(month_index(previous), month_index(origin)))

    def _decision_needs(self, i: int, evidence: Evidence) -> Needs:
        if self._current is None:
            return Needs()  # the first origin trains: there is no model yet
        key = self.plans[self._current].key
        scores = drift = frozenset()
        if "metrics" in self.reads:
            scores = frozenset(p for p in (ModelMonth(key, m) for m in self._labelled(self.plans[i].fold.origin))
                               if not evidence.has_scores(p))
        if "drift" in self.reads:
            drift = frozenset(p for p in (ModelMonth(key, m) for m in self._drift_months(i))
                              if not evidence.has_drift(p))
        return Needs(scores, drift)

    def _context(self, i: int, evidence: Evidence) -> DecisionContext:
        current = self.plans[self._current]
        origin = self.plans[i].fold.origin
        label = self.label

        def metrics(month: str) -> Mapping[str, Any]:
            if "metrics" not in self.reads:
                raise RapidsEvalError(f"policy {label!r} read metrics but declared reads={sorted(self.reads)}")
            return evidence.metrics(ModelMonth(current.key, month))

        def drift() -> DriftSignal:
            """The first alarming signal of the months since the previous decision, else the latest."""
            if "drift" not in self.reads:
                raise RapidsEvalError(f"policy {label!r} read drift but declared reads={sorted(self.reads)}")
            signals = [evidence.drift(ModelMonth(current.key, m)) for m in self._drift_months(i)]
            return next((signal for signal in signals if signal.alarm), signals[-1])

        return DecisionContext(
            origin=origin, model_origin=current.fold.origin, train_months=current.fold.train,
            months_since_retrain=months_between(current.fold.origin, origin), metric=self.metric,
            floor=self.floor, label_delay=self.label_delay,
            _metrics=metrics, _labelled=self._labelled(origin), _drift=drift,
        )

    def _decide(self, i: int, evidence: Evidence) -> _Decision:
        if self._current is None:
            return _Decision("initial")
        ctx = self._context(i, evidence)
        reason = self.decide(ctx)
        # a drift reason: the month whose signal it read
        trigger = ctx.drift().month if reason is not None and str(reason).startswith("drift") else ""
        return _Decision(reason, trigger)

    def _take(self, i: int, decision: _Decision) -> None:
        """Apply the decision at origin ``i`` and write the months it governs."""
        truth = None
        if decision.reason is not None:
            if self._current is not None and decision.trigger_month and self.truth is not None:
                truth = self.truth(self.plans[self._current].fold.train, decision.trigger_month)
            self._current = i
        model = self.plans[self._current]
        for j, month in enumerate(self._spans[i]):
            retrained = j == 0 and decision.reason is not None
            after_first = retrained and decision.reason != "initial"
            self._rows.append(PolicyMonth(
                policy=self.label, model_key=model.key, origin=model.fold.origin,
                train_start=model.fold.train_start, train_end=model.fold.train_end, eval_month=month,
                model_age_months=months_between(model.fold.train_end, month), retrained=retrained,
                retrain_reason=decision.reason if retrained else "",
                trigger_month=decision.trigger_month if after_first else "",
                trigger_true=truth if after_first else None,
            ))

    def _row_needs(self, evidence: Evidence) -> Needs:
        pairs = {ModelMonth(row.model_key, row.eval_month) for row in self._rows}
        return Needs(scores=frozenset(p for p in pairs if not evidence.has_scores(p)))


def walk_policies(walks: Sequence[PolicyWalk], evidence: Evidence, resolve: Callable[[Needs], None], *,
                  on_finished: Callable[[PolicyWalk], None] | None = None) -> None:
    """Advance every walk as far as ``evidence`` goes, hand what they lack together to
    ``resolve`` (which makes it known to ``evidence``), and repeat until every walk is done.

    ``on_finished(walk)`` is called once per walk, when it is done.
    """
    done: set[int] = set()
    previous: Needs | None = None
    while len(done) < len(walks):
        needs = Needs()
        for index, walk in enumerate(walks):
            if index in done:
                continue
            lacking = walk.advance(evidence)
            if lacking:
                needs |= lacking
            else:
                done.add(index)
                if on_finished is not None:
                    on_finished(walk)
        if not needs:
            continue
        if needs == previous:
            raise RapidsEvalError(f"backtest: resolving {len(needs.pairs)} (model, month) pair(s) made no progress")
        resolve(needs)
        previous = needs
