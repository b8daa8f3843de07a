"""Fixtures for the fp32 kernel tests: the kernels alone, built for the host
through cffi (no runtime), once per distinct kernel selection of the boards
(the reference kernels, and each selection that replaces some of them), and a
per-test deterministic random generator."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from kernel_harness import SELECTIONS, Kernels
from medyate.engine.build import load_engine
from medyate.errors import MedyateError


@pytest.fixture(scope="session", params=list(SELECTIONS.values()), ids=list(SELECTIONS))
def K(request):
    try:
        ffi, lib = load_engine(parts=("kernels",), kernels=request.param)
    except MedyateError as exc:  # no compiler: nothing here can run
        pytest.skip(str(exc))
    return Kernels(ffi, lib)


@pytest.fixture
def rng(request):
    # deterministic per test, different across tests
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
