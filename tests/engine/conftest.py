import numpy as np
import pytest

from medyate.ir.onnx_import import load_onnx

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="session")
def tiny_graph():
    """A real exporter's model (torch): conv, ReLU6, HardSwish, SE, residual, pools, FC."""
    return load_onnx(str(FIXTURES / "torch_tiny.onnx"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
