"""Retraining policies, registered by name.

A policy is consulted at every origin after the first (at the first one
every policy trains: there is no model yet).  It sees a
:class:`DecisionContext` holding only what was known at that time: the
metrics of the model in force on months whose labels had arrived
(``label_delay`` months after the month ended) and the drift signals of the
months seen since the previous decision (their features need no labels)
against the model's training months.  It returns a reason to retrain, or ``None`` to keep the
model.

Add your own with :func:`register_policy`::

    from rapidseval.backtest import register_policy

    @register_policy("quarterly_or_floor")
    def quarterly_or_floor(ctx, *, every=3):
        if ctx.months_since_retrain >= every:
            return "scheduled"
        m = ctx.latest_metrics()
        return f"floor: {m[ctx.metric]:.3f}" if m and m[ctx.metric] < ctx.floor else None

A policy is a pure function of its context and parameters.  It says which
facts it reads (``reads``: the model's ``"metrics"`` on labelled months, the
``"drift"`` signals; both unless it says less): before each decision the
backtest makes those facts known (scoring the months they need), so a
policy never waits, and a backtest whose policies read no drift fits no drift
reference.  The built-in ``static`` and ``periodic`` read nothing.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..core.errors import SpecError

__all__ = ["POLICIES", "READS", "DecisionContext", "BoundPolicy", "register_policy", "make_policy", "policy_reads"]

Policy = Callable[..., "str | None"]

#: name -> policy function ``f(ctx, **params) -> reason or None``
POLICIES: dict[str, Policy] = {}
#: the facts a policy may read from its context
READS = ("metrics", "drift")
_POLICY_READS: dict[str, frozenset[str]] = {}
#: the policies this module defines (filled at its end): a user's policy takes another name
_BUILT_IN: tuple[str, ...] = ()


@dataclass
class DecisionContext:
    """What a policy may know when deciding at ``origin``.

    Attributes
    ----------
    origin : str
        The month about to start (the first month the decision affects).
    model_origin : str
        Origin at which the model in force was trained.
    train_months : tuple of str
        Its training months.
    months_since_retrain : int
        ``origin - model_origin`` in months.
    metric : str
        The metric the floor applies to (``f1``, ``accuracy``, ...).
    floor : float
        The job's floor of ``metric``.
    label_delay : int
        Months after a month ends before its labels are known.
    """

    origin: str
    model_origin: str
    train_months: tuple[str, ...]
    months_since_retrain: int
    metric: str
    floor: float
    label_delay: int
    _metrics: Callable[[str], dict[str, Any]]
    _labelled: tuple[str, ...]
    _drift: Callable[[], Any]

    @property
    def labelled_months(self) -> tuple[str, ...]:
        """Months since the model's origin whose labels are known now (oldest first)."""
        return self._labelled

    def metrics(self, month: str) -> dict[str, Any]:
        """``n, tp, fp, fn, tn, precision, recall, f1, accuracy, ...`` of the model in force on a labelled month."""
        if month not in self._labelled:
            raise ValueError(
                f"at {self.origin} the labels of {month} are not known (label_delay {self.label_delay}); "
                f"known: {', '.join(self._labelled) or 'none'}"
            )
        return self._metrics(month)

    def latest_metrics(self) -> dict[str, Any] | None:
        """Metrics on the latest labelled month, or None when none is labelled yet."""
        return self.metrics(self._labelled[-1]) if self._labelled else None

    def drift(self):
        """Drift signal of the months seen since the previous decision (the month before the
        origin when origins are monthly) against the model's training months: the first of
        them that alarms, else the latest (a :class:`rapidseval.backtest.DriftSignal`; its
        ``month`` says which)."""
        return self._drift()


def register_policy(name: str, *, reads: Iterable[str] = READS) -> Callable[[Policy], Policy]:
    """Decorator: register ``f(ctx, **params) -> str | None`` as policy ``name``.

    Parameters
    ----------
    name : str
    reads : iterable of {"metrics", "drift"}
        The facts of its :class:`DecisionContext` the policy reads (default: both):
        ``metrics`` (:meth:`DecisionContext.metrics`, :meth:`~DecisionContext.latest_metrics`)
        and ``drift`` (:meth:`DecisionContext.drift`).  Reading another is an error.
    """
    if not isinstance(name, str) or not name:
        raise SpecError("a policy name must be a non-empty string")
    if name in _BUILT_IN:  # replacing one would change every job's static/periodic/drift_triggered
        raise SpecError(f"policy {name!r} is built in ({', '.join(_BUILT_IN)}); register yours under another name")
    reads = frozenset(reads)
    unknown = sorted(reads - set(READS))
    if unknown:
        raise SpecError(f"policy {name!r}: reads names {', '.join(unknown)}; choose from {', '.join(READS)}")

    def deco(fn: Policy) -> Policy:
        POLICIES[name] = fn
        _POLICY_READS[name] = reads
        return fn

    return deco


@dataclass(frozen=True)
class BoundPolicy:
    """A registered policy with its parameters bound: ``decide(ctx) -> reason or None``."""

    kind: str
    function: Policy = field(repr=False)
    params: dict[str, Any] = field(default_factory=dict)
    reads: frozenset[str] = frozenset(READS)

    def __call__(self, ctx: DecisionContext) -> str | None:
        return self.function(ctx, **self.params)


def policy_reads(decide: Callable[[DecisionContext], "str | None"]) -> frozenset[str]:
    """The facts ``decide`` reads: a :class:`BoundPolicy`'s declared ones, else all of them."""
    return decide.reads if isinstance(decide, BoundPolicy) else frozenset(READS)


def make_policy(kind: str, params: dict[str, Any]) -> BoundPolicy:
    """Bind ``params`` to the policy ``kind``; unknown kinds or parameters are a :class:`SpecError`."""
    fn = POLICIES.get(kind)
    if fn is None:
        raise SpecError(f"unknown retraining policy {kind!r}; choose one of {', '.join(POLICIES)}")
    sig = inspect.signature(fn)
    try:
        sig.bind(None, **params)
    except TypeError as exc:
        allowed = [p for p in list(sig.parameters)[1:]]
        raise SpecError(
            f"policy {kind!r}: {exc}; its parameters are {', '.join(allowed) or '(none)'}"
        ) from exc
    return BoundPolicy(kind, fn, dict(params), _POLICY_READS.get(kind, frozenset(READS)))


@register_policy("static", reads=())
def static(ctx: DecisionContext) -> str | None:
    """Train once, at the first origin; never retrain."""
    return None


@register_policy("periodic", reads=())
def periodic(ctx: DecisionContext, *, every: int = 3) -> str | None:
    """Retrain every ``every`` months."""
    if not isinstance(every, int) or every < 1:
        raise SpecError(f"policy periodic: every must be an integer >= 1, got {every!r}")
    return f"scheduled (every {every} months)" if ctx.months_since_retrain >= every else None


@register_policy("drift_triggered")
def drift_triggered(ctx: DecisionContext, *, use_drift: bool = True, use_floor: bool = True,
                    min_months: int = 1) -> str | None:
    """Retrain when a month seen since the last decision drifted from the model's
    training months (:meth:`DecisionContext.drift`), or when the model's metric on the latest labelled month fell below the floor.

    Parameters
    ----------
    use_drift, use_floor : bool
        Which signals may trigger.
    min_months : int
        Keep a new model at least this many months.
    """
    if ctx.months_since_retrain < min_months:
        return None
    if use_drift:  # first: it needs no labels, so no scores
        sig = ctx.drift()
        if sig.alarm:
            return f"drift: {sig.feature} {sig.statistic} {sig.value:.4f} > {sig.threshold:.4f} in {sig.month}"
    if use_floor:
        m = ctx.latest_metrics()
        if m is not None and m["n"] > 0 and m[ctx.metric] < ctx.floor:
            return f"floor: {ctx.metric} {m[ctx.metric]:.4f} < {ctx.floor:g} in {ctx.labelled_months[-1]}"
    return None


_BUILT_IN = tuple(POLICIES)
