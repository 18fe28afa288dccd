import sys
import types
from pathlib import Path

import pytest

from rapidseval import SpecError, load_job
from rapidseval.spec import apply_overrides, spec_hash

JOBS = Path(__file__).resolve().parent.parent / "jobs"


@pytest.mark.parametrize("name", ["nyc_taxi_2020.yaml", "smoke.yaml"])
def test_shipped_jobs_validate(name):
    spec = load_job(JOBS / name)
    assert spec.evaluation.train


def test_study_job_reproduces_the_study_layout():
    spec = load_job(JOBS / "nyc_taxi_2020.yaml")
    ev = spec.evaluation
    assert ev.train == ["2020-01"] and ev.test == ["2020-02"]
    assert ev.replay.months == ["2020-03"] and ev.replay.window == "D"
    assert ev.score == ["2020-03", "2020-04", "2020-05", "2020-06"]
    assert ev.shift.reference == "2020-01" and ev.shift.compare == ["2020-02", "2020-03"]
    assert spec.model.params == {"n_estimators": 100, "max_depth": 10}
    assert len(spec.features.features) == 11


def test_unknown_field_is_named(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_text("name: x\nmodel:\n  kind: random_forest\n  n_trees: 3\n")
    with pytest.raises(SpecError, match=r"job.yaml: model.n_trees: unknown field"):
        load_job(p)


def test_unknown_choice_lists_registry():
    with pytest.raises(SpecError, match=r"model.kind: unknown model kind 'xgb'; choose one of random_forest"):
        load_job({"model": {"kind": "xgb"}})
    with pytest.raises(SpecError, match=r"features.features: .*unknown feature\(s\) tip_pct; choose from pickup_weekday"):
        load_job({"features": {"features": ["tip_pct"]}})


def test_months_must_be_within_data_range():
    with pytest.raises(SpecError, match=r"evaluation.score: month\(s\) 2020-07 outside data months 2020-01..2020-06"):
        load_job({"evaluation": {"score": ["2020-07"]}})


def test_bad_month_format():
    with pytest.raises(SpecError, match=r"data.start: .*YYYY-MM"):
        load_job({"data": {"start": "2020-1"}})


def test_secrets_refused_in_storage_options():
    with pytest.raises(SpecError, match="credentials never go in a job file"):
        load_job({"data": {"storage_options": {"secret": "abc"}}})
    with pytest.raises(SpecError, match="credentials never go in a job file"):
        load_job({"data": {"storage_options": {"client_kwargs": {"aws_secret_access_key": "x"}}}})
    # endpoint_url and anon are fine
    load_job({"data": {"storage_options": {"anon": True, "endpoint_url": "http://127.0.0.1:9000"}}})


def test_set_overrides_are_validated_like_the_file():
    spec = load_job(JOBS / "smoke.yaml", ["model.params.n_estimators=7", "data.source=s3://b/y_{month}.parquet"])
    assert spec.model.params["n_estimators"] == 7 and spec.data.source == "s3://b/y_{month}.parquet"
    with pytest.raises(SpecError, match="cluster.n_workers"):
        load_job(JOBS / "smoke.yaml", ["cluster.n_workers=0"])
    with pytest.raises(SpecError, match="expected key=value"):
        load_job(JOBS / "smoke.yaml", ["model.params.n_estimators"])


def test_overrides_do_not_mutate_input():
    raw = {"model": {"params": {"n_estimators": 1}}}
    out = apply_overrides(raw, {"model.params.n_estimators": 2})
    assert raw["model"]["params"]["n_estimators"] == 1 and out["model"]["params"]["n_estimators"] == 2


def test_hash_is_stable_and_sensitive():
    a = load_job(JOBS / "smoke.yaml")
    assert spec_hash(a) == spec_hash(load_job(JOBS / "smoke.yaml"))
    assert spec_hash(a) != spec_hash(load_job(JOBS / "smoke.yaml", ["seed=1"]))


def test_yaml_is_data_not_code(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_job(p)


def test_user_info_in_source_is_refused():
    with pytest.raises(SpecError, match=r"data.source: credentials never go in a job file"):
        load_job({"data": {"source": "https://alice:hunter2@example.org/y_{month}.parquet"}})


@pytest.mark.parametrize(
    "months, message",
    [
        (["2020-03", "2020-03"], "more than once"),
        (["2020-04", "2020-03"], "calendar order"),
        (["2020-02", "2020-04"], "consecutive"),
    ],
)
def test_replay_months_are_one_ordered_stream(months, message):
    with pytest.raises(SpecError, match=rf"evaluation.replay.months: .*{message}"):
        load_job({"evaluation": {"replay": {"months": months}}})


def test_duplicate_months_refused():
    with pytest.raises(SpecError, match="evaluation.train: train lists 2020-01 more than once"):
        load_job({"evaluation": {"train": ["2020-01", "2020-01"]}})
    with pytest.raises(SpecError, match="shift.compare lists 2020-02 more than once"):
        load_job({"evaluation": {"shift": {"compare": ["2020-02", "2020-02"]}}})


def test_a_job_is_a_study_or_a_backtest_by_kind_or_by_its_sections():
    from rapidseval.spec import BacktestJob, JobSpec, StudyJob

    study = load_job({})
    backtest = load_job({"data": {"start": "2019-01", "end": "2020-12"}, "backtest": {}})
    assert isinstance(study, StudyJob) and isinstance(backtest, BacktestJob)
    assert isinstance(study, JobSpec) and study.backtest is None and backtest.backtest is not None
    assert type(load_job({"kind": "study"})) is StudyJob
    assert "kind" not in study.model_dump() and "kind" not in backtest.model_dump()  # the manifest's job is the file's
    assert spec_hash(load_job({"kind": "study"})) == spec_hash(study)
    with pytest.raises(SpecError, match="unknown job kind 'replay'; kind must be one of study, backtest"):
        load_job({"kind": "replay"})
    with pytest.raises(SpecError, match="backtest: a backtest job \\(kind: backtest\\) needs a backtest section"):
        load_job({"kind": "backtest"})  # was "backtest: Field required"
    with pytest.raises(SpecError, match="backtest: a study has no backtest section"):
        load_job({"kind": "study", "backtest": {}})
    again = load_job(backtest, ["seed=3"])  # overrides on a loaded job keep its kind (and its unset sections unset)
    assert isinstance(again, BacktestJob) and again.seed == 3


def test_the_spec_is_pure_and_the_domain_checks_run_in_the_checked_loader():
    import rapidseval.spec
    from rapidseval.jobs.checks import check_job

    job = {"output": {"dir": "runs/{user}"}}
    spec = rapidseval.spec.load_job(job)  # names only: the run directory's rules are the domain's
    with pytest.raises(SpecError, match=r"^job: output.dir: unknown placeholder \{user\}"):
        check_job(spec)
    with pytest.raises(SpecError, match=r"^job: output.dir: unknown placeholder \{user\}"):
        load_job(job)


def test_the_statistic_check_is_one_message_everywhere():
    for raw, where in [({"evaluation": {"shift": {"statistics": ["kss"]}}}, "evaluation.shift.statistics"),
                       ({"evaluation": {"shift": {"min_effect": {"kss": 0.1}}}}, "evaluation.shift.min_effect"),
                       ({"data": {"start": "2019-01", "end": "2020-12"}, "backtest": {"drift": {"statistics": ["kss"]}}},
                        "backtest.drift.statistics"),
                       ({"data": {"start": "2019-01", "end": "2020-12"}, "backtest": {"drift": {"min_effect": {"kss": 1}}}},
                        "backtest.drift.min_effect")]:
        with pytest.raises(SpecError, match=rf"{where}: unknown shift statistic 'kss'; choose from ks, "):
            load_job(raw)


def test_registry_reads_its_provider_on_first_lookup_and_sees_later_names():
    from rapidseval.core.registry import Registry

    names = {"a": 1}
    module = types.ModuleType("_rapidseval_test_provider")
    module.NAMES = names
    sys.modules[module.__name__] = module
    try:
        registry = Registry("thing", provider=f"{module.__name__}:NAMES")
        assert "a" in registry and registry["a"] == 1
        names["b"] = 2  # the domain registers one more
        registry.register("c")
        assert list(registry) == ["a", "b", "c"] and registry.choices() == "a, b, c" and len(registry) == 3
    finally:
        del sys.modules[module.__name__]


def test_every_job_kind_the_spec_accepts_has_a_runner():
    import rapidseval.jobs
    import rapidseval.spec

    assert set(rapidseval.jobs.JOB_RUNNERS) == set(rapidseval.spec.JOB_KINDS)
