"""core.arrays: the namespace and to-host dispatchers, and their lazy registration by module.

The GPU halves (CuPy, cuDF) are registered lazily in ``rapidseval.backend`` and tested on a
GPU in tests/test_cupy_paths.py; here a stand-in module shows the mechanism on any machine.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest

from rapidseval.core.arrays import Dispatch, array_namespace, to_host, to_numpy


def test_host_objects_stay_as_they_are():
    array, series, frame = np.arange(3), pd.Series([1.5, 2.5]), pd.DataFrame({"a": [1]})
    assert to_host(array) is array and to_host(series) is series and to_host(frame) is frame
    assert array_namespace(array) is np and array_namespace(series) is np
    assert to_numpy(series).tolist() == [1.5, 2.5] and to_numpy([1, 2], dtype="float64").dtype == np.float64


def _fake_module(name: str):
    module = types.ModuleType(name)
    exec("class DeviceArray:\n    def __init__(self, values):\n        self.values = values\n", module.__dict__)
    module.DeviceArray.__module__ = f"{name}._core"
    return module


def test_a_lazy_registration_runs_once_when_its_first_object_shows_up(monkeypatch):
    fake = _fake_module("fakegpu")
    monkeypatch.setitem(sys.modules, "fakegpu", fake)
    dispatch, calls = Dispatch("to_host"), []
    dispatch.register(object, np.asarray)

    @dispatch.register_lazy("fakegpu")
    def _register():
        calls.append(1)
        dispatch.register(fake.DeviceArray, lambda x: np.asarray(x.values) * 10)

    assert dispatch(np.arange(2)).tolist() == [0, 1] and calls == []  # nothing of fakegpu yet
    assert dispatch(fake.DeviceArray([1, 2])).tolist() == [10, 20] and calls == [1]
    assert dispatch(fake.DeviceArray([3])).tolist() == [30] and calls == [1]  # registered once


def test_a_type_nothing_handles_is_named():
    dispatch = Dispatch("array_namespace")
    with pytest.raises(TypeError, match="array_namespace: no implementation for builtins.int"):
        dispatch(3)
