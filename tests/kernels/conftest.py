"""Fixtures for the fp32 kernel tests: the kernels alone, built for the host
through cffi (no runtime), and a per-test deterministic random generator."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from kernel_harness import Kernels
from medyate.engine.build import load_engine
from medyate.errors import MedyateError


@pytest.fixture(scope="session")
def K():
    try:
        ffi, lib = load_engine(parts=("kernels",))
    except MedyateError as exc:  # no compiler: nothing here can run
        pytest.skip(str(exc))
    return Kernels(ffi, lib)


@pytest.fixture
def rng(request):
    # deterministic per test, different across tests
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
