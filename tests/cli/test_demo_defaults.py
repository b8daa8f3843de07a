"""`medyate demo` picks the bundled model's task and schedule for the options not
given, and says which models it knows."""
import pytest

from medyate.cli import build_parser
from medyate.commands.demo import DEFAULT_MODEL, DEMO_DEFAULTS, _fill_defaults
from medyate.data import BUNDLED_MODELS, bundled_model, load_task
from medyate.errors import MedyateError
from medyate.session.model import input_shape_of


def _args(*argv):
    a = build_parser().parse_args(["demo", *argv])
    _fill_defaults(a)
    return a


def test_default_is_the_real_int8_model_at_its_input_size():
    a = _args()
    assert a.model == DEFAULT_MODEL == "mcunet-5fps"
    assert a.task == "fmnist-5to9-rgb128" and a.lr == 0.01
    assert input_shape_of(a.model)[1:] == (3, 128, 128)


def test_tiny_model_takes_its_own_task_and_given_options_win():
    a = _args("--model", "mbv2-tiny", "--lr", "0.02")
    assert a.task == "fmnist-5to9" and a.n_train == 400 and a.lr == 0.02


@pytest.mark.parametrize("model", sorted(DEMO_DEFAULTS))
def test_every_demo_model_is_bundled_and_its_task_fits_it(model):
    assert model in BUNDLED_MODELS and bundled_model(model).is_file()
    task = load_task(DEMO_DEFAULTS[model]["task"], n_train=4, n_test=4)
    assert tuple(task.x_train.shape[1:]) == input_shape_of(model)[1:]


def test_unknown_model_is_named():
    with pytest.raises(MedyateError, match="'resnet'.*mcunet-5fps"):
        _args("--model", "resnet")
