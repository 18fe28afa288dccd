"""The model's checks: the assertion set, leakage and consistency (``checks.assertions``,
``checks.leakage``, ``checks.consistency``), on the client from what the job already holds.

- **Assertion set**: rows a decent model must get right, never fitted on
  (:func:`load_assertions`, :func:`score_assertions`). Their features come from the job's
  own feature code (:func:`rapidseval.features.prepare`), so they equal what the models see.
- **Leakage**: the exact single-feature AUC for the label on (a seeded sample of at most
  :data:`LEAKAGE_SAMPLE_ROWS`) training rows, either direction (:func:`feature_aucs`); and
  the training months that overlap or follow the evaluation months (:func:`time_leakage_rows`).
- **Consistency**: the model file written to the run directory, reloaded from its exact
  bytes, scores a sample as the model in memory does (:func:`consistency_rows`).

Every function here returns :func:`rapidseval.checks.check_row` rows (``checks.parquet``).
"""

from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass
from importlib import resources
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.errors import DataError
from ..features import FeatureSpec, prepare, required_columns
from ..models import predict_positive_proba
from ..replay import mann_whitney_auc
from . import check_row

__all__ = ["BUILTIN_ASSERTIONS", "LEAKAGE_SAMPLE_ROWS", "ASSERTION_COLUMNS", "AssertionSet", "AssertionOutcome",
           "load_assertions", "read_assertion_file", "score_assertions", "assertion_row", "assertions_table",
           "exact_auc", "feature_aucs", "leakage_rows", "time_leakage_rows", "model_file_bytes",
           "consistency_rows"]

#: ``builtin:<name>`` -> the assertion set that ships with rapidseval
BUILTIN_ASSERTIONS = {"high_tip": "assertions_high_tip.csv"}
#: the leakage AUC is computed on a seeded sample of at most this many training rows: a
#: feature that leaks at AUC > 0.99 shows on any sample of this size (the AUC's standard
#: error there is below 0.001)
LEAKAGE_SAMPLE_ROWS = 200_000
#: the columns of ``assertions.parquet`` (one row per assertion row and model/fold)
ASSERTION_COLUMNS = ["row", "model", "month", "expected", "proba", "predicted", "passed", "note"]
#: failing rows a check's ``detail`` lists before it says how many more
DETAIL_ROWS = 10

_OPTIONAL = ("proba_min", "proba_max", "note")


# ---------------------------------------------------------------------------------------
# the assertion set
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AssertionSet:
    """Rows every model must get right: their features (the job's feature code, float32 as the
    models see them), the expected label and the probability bounds (NaN: no bound).

    Attributes
    ----------
    source : str
        The file as the job names it (``builtin:high_tip``, a path or a URI).
    features : pandas.DataFrame
        One row per assertion row, in file order, the job's features as columns.
    expected : numpy.ndarray
        0/1 per row.
    proba_min, proba_max : numpy.ndarray
        Bounds on P(y=1) per row (NaN where none).
    notes : list of str
    """

    source: str
    features: pd.DataFrame
    expected: np.ndarray
    proba_min: np.ndarray
    proba_max: np.ndarray
    notes: list[str]

    def __len__(self) -> int:
        return len(self.expected)

    def fingerprint(self) -> str:
        """A hash of what the set asks (features, expected labels, bounds): an edited file at
        the same path has another one (a resumed backtest scores its folds again)."""
        digest = hashlib.sha256()
        digest.update(pd.util.hash_pandas_object(self.features, index=False).to_numpy().tobytes())
        for values in (self.expected, self.proba_min, self.proba_max):
            digest.update(np.ascontiguousarray(values).tobytes())
        return digest.hexdigest()[:16]


def read_assertion_file(source: str, storage_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The rows of an assertion file (Parquet or CSV by its suffix; ``builtin:<name>``, a local
    path or a URI :func:`rapidseval.io.sources.open_fs` opens), as read.

    Raises
    ------
    DataError
        The file is missing or cannot be read (the message names it).
    """
    if source.startswith("builtin:"):
        name = source.removeprefix("builtin:")
        if name not in BUILTIN_ASSERTIONS:
            raise DataError(f"checks.assertions.path: unknown built-in assertion set {source!r}; "
                            f"the shipped ones: {', '.join('builtin:' + n for n in BUILTIN_ASSERTIONS)}")
        data = resources.files(__package__).joinpath(BUILTIN_ASSERTIONS[name]).read_bytes()
        return _parse(io.BytesIO(data), BUILTIN_ASSERTIONS[name], source)
    from ..io.sources import open_fs  # an s3:// set opens like the job's inputs

    try:
        fs, path = open_fs(source, storage_options)
        with fs.open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise DataError(f"checks.assertions.path: {source}: no such file") from None
    except OSError as exc:
        raise DataError(f"checks.assertions.path: {source}: cannot be read ({exc})") from exc
    return _parse(io.BytesIO(data), path, source)


def _parse(handle, name: str, source: str) -> pd.DataFrame:
    try:
        if name.lower().endswith((".parquet", ".pq")):
            return pd.read_parquet(handle)
        return pd.read_csv(handle, keep_default_na=False, na_values=[""])
    except Exception as exc:  # noqa: BLE001 - any parser failure is the file's problem, said in one line
        raise DataError(f"checks.assertions.path: {source}: cannot be read as "
                        f"{'Parquet' if name.lower().endswith(('.parquet', '.pq')) else 'CSV'} ({exc})") from exc


def load_assertions(source: str, fspec: FeatureSpec, *,
                    storage_options: Mapping[str, Any] | None = None) -> AssertionSet:
    """Read and validate an assertion file and compute its features with the job's feature code.

    Columns: the canonical input columns the job's features and drop rules read (the target's
    own columns, such as ``tip_amount``, may be left out: ``expected`` is the label),
    ``expected`` (0/1), and optionally ``proba_min``, ``proba_max`` and ``note``.

    Raises
    ------
    DataError
        One line naming the file and the row and rule or column: a missing column, an
        ``expected`` that is not 0/1, bounds outside [0, 1], a row the drop rules would drop.
    """
    rows = read_assertion_file(source, storage_options)
    if rows.empty:
        raise DataError(f"{source}: the assertion set has no rows")
    canonical = _canonical_rows(rows, fspec, source)
    expected = _expected(rows, source)
    lo, hi = _bounds(rows, source)
    features = _assertion_features(canonical, fspec, source)
    notes = rows["note"].astype("string").fillna("").tolist() if "note" in rows else [""] * len(rows)
    return AssertionSet(source, features, expected, lo, hi, notes)


def _canonical_rows(rows: pd.DataFrame, fspec: FeatureSpec, source: str) -> pd.DataFrame:
    """The canonical columns the job reads, typed (times parsed, numbers float64)."""
    need = required_columns(fspec)
    # the label is `expected`: a column only the target reads (and the rule that drops rows
    # without a label) may be left out, and is then filled in
    target_only = {c for c, users in need.items()
                   if all(u.startswith("target ") or u == "rule missing_label" for u in users)}
    missing = [c for c in need if c not in rows.columns and c not in target_only]
    if "expected" not in rows.columns:
        missing.append("expected")
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)} needed by "
                        + "; ".join(f"{c}: {', '.join(need.get(c, ['the expected label']))}" for c in missing))
    out = {}
    for col in need:
        if col in target_only and col not in rows.columns:
            out[col] = np.zeros(len(rows))  # the label is `expected`; the target's column only has to be there
        elif col.endswith("_datetime"):
            try:
                out[col] = pd.to_datetime(rows[col]).astype("datetime64[us]")
            except (ValueError, TypeError) as exc:
                raise DataError(f"{source}: column {col}: not a timestamp ({exc})") from exc
        else:
            values = pd.to_numeric(rows[col], errors="coerce")
            bad = values.isna() & rows[col].notna()
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(f"{source}: row {i}: column {col}: {rows[col].iloc[i]!r} is not a number")
            out[col] = values.astype("float64")
    return pd.DataFrame(out)


def _expected(rows: pd.DataFrame, source: str) -> np.ndarray:
    values = pd.to_numeric(rows["expected"], errors="coerce")
    bad = ~values.isin([0, 1])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{source}: row {i}: expected must be 0 or 1, got {rows['expected'].iloc[i]!r}")
    return values.to_numpy().astype("int8")


def _bounds(rows: pd.DataFrame, source: str) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for col in ("proba_min", "proba_max"):
        values = (pd.to_numeric(rows[col], errors="coerce") if col in rows else pd.Series(np.nan, index=rows.index))
        bad = (values < 0) | (values > 1) | (values.isna() & rows[col].notna() if col in rows else False)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{source}: row {i}: {col} must be a probability in [0, 1], got {rows[col].iloc[i]!r}")
        out.append(values.to_numpy(dtype="float64"))
    lo, hi = out
    crossed = lo > hi
    if crossed.any():
        i = int(np.flatnonzero(crossed)[0])
        raise DataError(f"{source}: row {i}: proba_min {lo[i]} is above proba_max {hi[i]}")
    return lo, hi


def _assertion_features(canonical: pd.DataFrame, fspec: FeatureSpec, source: str) -> pd.DataFrame:
    """The features of every row, in order; a row the drop rules drop is an error naming it."""
    from ..backend import get_backend  # the host backend: the set is small, scored as pandas

    cpu = get_backend("cpu")
    month = canonical["pickup_datetime"].dt.strftime("%Y-%m").fillna("1970-01")
    frames = []
    for m, group in canonical.groupby(month, sort=False):
        frame, stats = prepare(group.reset_index(drop=True), fspec, month=m, backend=cpu, path=source)
        if stats.rows_used < len(group):
            _raise_dropped(group, fspec, m, source)
        frame.index = group.index
        frames.append(frame)
    return pd.concat(frames).sort_index()[list(fspec.features)].reset_index(drop=True)


def _raise_dropped(group: pd.DataFrame, fspec: FeatureSpec, month: str, source: str) -> None:
    """Find the first row of ``group`` the drop rules drop, alone, and name it and its rule."""
    from ..backend import get_backend

    cpu = get_backend("cpu")
    for i in group.index:
        _, stats = prepare(group.loc[[i]].reset_index(drop=True), fspec, month=month, backend=cpu, path=source)
        if stats.rows_used == 0:
            rule = next(r for r, n in stats.dropped.items() if n)
            raise DataError(f"{source}: row {i}: the drop rule {rule} drops it (an assertion row must be one "
                            "the job would use)")
    raise DataError(f"{source}: rows of {month}: the drop rules drop some of them together (duplicates?)")


# ---------------------------------------------------------------------------------------
# scoring the set
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AssertionOutcome:
    """One model's (or fold's) answers on the assertion set: ``table`` has
    :data:`ASSERTION_COLUMNS`, one row per assertion row."""

    model: str
    month: str | None
    threshold: float
    table: pd.DataFrame

    @property
    def failures(self) -> int:
        return int((~self.table["passed"]).sum())

    def to_json(self) -> dict[str, Any]:
        """A JSON-able record (a backtest keeps it in the fold's marker)."""
        return {"model": self.model, "month": self.month, "threshold": self.threshold,
                "table": self.table.astype({"passed": bool}).to_dict(orient="list")}

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> "AssertionOutcome":
        table = pd.DataFrame(record["table"], columns=ASSERTION_COLUMNS)
        return cls(record["model"], record["month"], float(record["threshold"]), _typed(table))


def score_assertions(aset: AssertionSet, model, threshold: float, backend, *, model_name: str,
                     month: str | None = None) -> AssertionOutcome:
    """Score the set with ``model``: a row passes when ``proba > threshold`` (the prediction,
    as everywhere in rapidseval: a proba at a learned threshold is a negative) is its expected
    label and its proba is within its bounds (``month``: the fold's marker in a backtest)."""
    X = aset.features
    if backend.name != "cpu":
        X = backend.from_arrow(pa.Table.from_pandas(X, preserve_index=False))
    proba = np.asarray(backend.to_host(predict_positive_proba(model, X, backend)), dtype="float64")
    predicted = (proba > threshold).astype("int8")
    within = ~(proba < aset.proba_min) & ~(proba > aset.proba_max)  # NaN bounds compare False: no bound
    passed = (predicted == aset.expected) & within
    table = pd.DataFrame({"row": np.arange(len(aset)), "model": model_name, "month": month,
                          "expected": aset.expected, "proba": proba, "predicted": predicted, "passed": passed,
                          "note": aset.notes})
    return AssertionOutcome(model_name, month, float(threshold), _typed(table))


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    return table.astype({"row": "int64", "model": "string", "month": "string", "expected": "int8",
                         "proba": "float64", "predicted": "int8", "passed": "bool", "note": "string"})


def assertion_row(outcome: AssertionOutcome, source: str, *, severity: str, max_failures: int) -> dict[str, Any]:
    """The check row of one outcome: value = failing rows, held when at most ``max_failures``;
    the detail lists the first :data:`DETAIL_ROWS` failing rows."""
    failing = outcome.table[~outcome.table["passed"]]
    shown = [f"row {r.row} ({r.note or 'no note'}): expected {r.expected}, proba {r.proba:.3f}"
             for r in failing.head(DETAIL_ROWS).itertuples()]
    more = len(failing) - len(shown)
    detail = (f"{len(failing)} of {len(outcome.table)} rows of {source} failed at threshold {outcome.threshold:.3f}"
              + (": " + "; ".join(shown) if shown else "") + (f"; and {more} more" if more > 0 else ""))
    return check_row(f"assertions {source}", "assertions", severity, held=len(failing) <= max_failures,
                     model=outcome.model, month=outcome.month, value=len(failing), threshold=max_failures,
                     detail=detail)


def assertions_table(outcomes: Sequence[AssertionOutcome]) -> pd.DataFrame:
    """``assertions.parquet``: the failing rows of every outcome (:data:`ASSERTION_COLUMNS`)."""
    failing = [o.table[~o.table["passed"]] for o in outcomes]
    if not failing:
        return _typed(pd.DataFrame(columns=ASSERTION_COLUMNS))
    return _typed(pd.concat(failing, ignore_index=True))


# ---------------------------------------------------------------------------------------
# leakage
# ---------------------------------------------------------------------------------------
def exact_auc(values: np.ndarray, labels: np.ndarray) -> float:
    """The ROC AUC of ``values`` as a score for 0/1 ``labels``, ties counted half (the
    Mann-Whitney U over n1*n0; what :func:`sklearn.metrics.roc_auc_score` gives); NaN when
    only one class is present."""
    labels = np.asarray(labels).astype("int8")
    return float(mann_whitney_auc(np.asarray(values, dtype="float64"), labels, np.ones(len(labels))))


def feature_aucs(frame, features: Sequence[str], target: str, backend, *, seed: int,
                 sample_rows: int = LEAKAGE_SAMPLE_ROWS) -> dict[str, float]:
    """feature -> how well it alone predicts ``target`` on (a seeded sample of at most
    ``sample_rows`` of) ``frame``'s rows: the larger of its AUC as a score in either direction,
    and the AUC of its values' out-of-fold label rates (a leak through codes, not monotone)."""
    n = len(frame)
    take = None
    if n > sample_rows:
        take = np.sort(np.random.default_rng(seed).choice(n, size=sample_rows, replace=False))
    labels = np.asarray(backend.to_host(backend.asarray(frame[target])))
    if take is not None:
        labels = labels[take]
    folds = np.random.default_rng(seed + 1).integers(0, 2, len(labels))
    out = {}
    for name in features:
        values = np.asarray(backend.to_host(backend.asarray(frame[name], dtype="float64")))
        values = values if take is None else values[take]
        auc = exact_auc(values, labels)
        raw = max(auc, 1.0 - auc) if auc == auc else auc
        encoded = exact_auc(_out_of_fold_rates(values, labels, folds), labels)
        out[name] = max(raw, encoded) if encoded == encoded else raw
    return out


#: pseudo-rows of the prior that shrink a value's label rate (a value seen a few times says little)
_RATE_SHRINK = 20.0


def _out_of_fold_rates(values: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Each row's score: its value's label rate on the *other* fold (shrunk to that fold's
    rate by :data:`_RATE_SHRINK` pseudo-rows; a value the other fold lacks gets the prior).

    A leak need not be monotone: a zone code or hash whose values carry the label (even codes
    positive, odd negative) has an AUC of 0.5 as a raw score, and near 1 as its label rate.
    Out of fold, so a value seen once (an ID) cannot score its own label."""
    codes, inverse = np.unique(values, return_inverse=True)
    y = labels.astype("float64")
    scores = np.empty(len(values), dtype="float64")
    for fold in (0, 1):
        other = folds != fold
        count = np.bincount(inverse[other], minlength=len(codes))
        positives = np.bincount(inverse[other], weights=y[other], minlength=len(codes))
        prior = y[other].mean() if other.any() else 0.5
        rate = (positives + _RATE_SHRINK * prior) / (count + _RATE_SHRINK)
        here = folds == fold
        scores[here] = rate[inverse[here]]
    return scores


def leakage_rows(aucs: Mapping[str, float], *, max_feature_auc: float, severity: str, models: Sequence[str],
                 month: str | None, rows: int) -> list[dict[str, Any]]:
    """One ``leakage`` row per feature and model: value = the feature's AUC (either direction),
    held when at most ``max_feature_auc`` (``month``: the training months, or the fold)."""
    out = []
    sample = f"{min(rows, LEAKAGE_SAMPLE_ROWS):,} of {rows:,} training rows"
    for model in models:
        for feature, auc in aucs.items():
            held = not auc > max_feature_auc  # NaN (one class) cannot leak
            what = "alone nearly predicts the label: a leak?" if not held else "within bounds"
            out.append(check_row(f"leakage {feature}", "leakage", severity, held=held, model=model, month=month,
                                 value=auc, threshold=max_feature_auc,
                                 detail=f"{feature}: AUC {auc:.4f} (either direction) on {sample}; {what}"))
    return out


def time_leakage_rows(overlap: Mapping[str, Mapping[str, Sequence[str]]], models: Sequence[str], *,
                      severity: str, month_of: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One ``time_leakage`` row per model: held when none of its training months overlaps or
    follows its evaluation months (``overlap``: :meth:`JobSpec.train_eval_overlap`); ``month_of``
    names a row's month (a backtest's fold)."""
    out = []
    for model in models:
        late = overlap.get(model)
        if late:
            detail = (f"{model} trains on {', '.join(late['train_months'])}, which overlap or follow its "
                      f"evaluation months {', '.join(late['eval_months'])}")
        else:
            detail = f"{model}: every training month precedes its evaluation months"
        out.append(check_row("time leakage", "time_leakage", severity, held=not late, model=model,
                             month=(month_of or {}).get(model), value=len(late["train_months"]) if late else 0,
                             threshold=0, detail=detail))
    return out


# ---------------------------------------------------------------------------------------
# consistency
# ---------------------------------------------------------------------------------------
def model_file_bytes(model) -> bytes:
    """The bytes of a model's file in the run directory (``models/<name>.pkl``: a pickle)."""
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def consistency_rows(model, file_bytes: bytes, sample, features: Sequence[str], backend, *, model_name: str,
                     severity: str, gpu_cpu_tolerance: float, month: str | None = None) -> list[dict[str, Any]]:
    """The model reloaded from ``file_bytes`` scores ``sample`` as ``model`` does: exactly
    (``np.array_equal`` of P(y=1)); on the GPU, also the model's CPU twin (cuML's
    ``as_sklearn()``, where it exists) within ``gpu_cpu_tolerance``."""
    X = sample[list(features)]
    in_memory = np.asarray(backend.to_host(predict_positive_proba(model, X, backend)))
    reloaded = pickle.loads(file_bytes)
    from_file = np.asarray(backend.to_host(predict_positive_proba(reloaded, X, backend)))
    same = in_memory.shape == from_file.shape and np.array_equal(in_memory, from_file)
    diff = float(np.max(np.abs(in_memory - from_file))) if in_memory.shape == from_file.shape and len(X) else 0.0
    rows = [check_row("consistency reload", "consistency", severity, held=same, model=model_name, month=month,
                      value=diff, threshold=0.0,
                      detail=(f"models/{model_name}.pkl reloaded scores {len(X):,} rows "
                              + ("exactly as in memory" if same else f"differently: max |dP| {diff:.3g}")))]
    if backend.name != "cpu":
        rows.append(_gpu_cpu_row(model, X, in_memory, backend, model_name=model_name, severity=severity,
                                 tolerance=gpu_cpu_tolerance, month=month))
    return rows


def _gpu_cpu_row(model, X, on_gpu: np.ndarray, backend, *, model_name: str, severity: str, tolerance: float,
                 month: str | None) -> dict[str, Any]:
    """|P_gpu - P_cpu| of the model's CPU twin (cuML ``as_sklearn()``); a pass row saying so when none."""
    twin = getattr(model, "as_sklearn", None)
    try:
        cpu_model = twin() if twin is not None else None
    except (NotImplementedError, AttributeError, TypeError, ValueError) as exc:
        cpu_model, why = None, f"its CPU twin cannot be built ({exc})"
    else:
        why = "it has no CPU twin (as_sklearn)"
    if cpu_model is None:
        return check_row("consistency gpu-cpu", "consistency", severity, held=True, model=model_name, month=month,
                         threshold=tolerance, detail=f"not compared: {why}")
    host_X = backend.to_host(X)
    on_cpu = np.asarray(cpu_model.predict_proba(host_X.to_numpy(dtype="float32")))[:, 1]
    diff = float(np.max(np.abs(on_gpu - on_cpu))) if len(on_cpu) else 0.0
    return check_row("consistency gpu-cpu", "consistency", severity, held=diff <= tolerance, model=model_name,
                     month=month, value=diff, threshold=tolerance,
                     detail=f"max |P_gpu - P_cpu| {diff:.3g} on {len(on_cpu):,} rows (CPU twin: as_sklearn)")
