"""The task pipelines' shared model setup."""

from omegaconf import OmegaConf

from mesimp.nn import MePropLinear
from mesimp.nn.lstm import MePropLSTM
from mesimp.nn.mlp import MLP
from mesimp.tasks.common import prepare_model
from mesimp.tasks.pos.model import Tagger
from tests.helpers import compose_config


def test_meprop_layers_add_into_grad_the_dense_output_layer_does_not():
    """The training loop reads .grad after backward(): its meProp layers may add their dL/dW into it in place."""
    cfg = OmegaConf.to_object(compose_config("task=mnist", "k=3", "device=cpu"))
    model = MLP(12, [8, 8], 3)
    built = prepare_model(cfg, task=None, model=model)
    assert built.tracked_layers == {"hidden.0", "hidden.1"}
    assert all(model.get_submodule(name).grad_in_place for name in built.tracked_layers)
    assert isinstance(model.output, MePropLinear) and not model.output.grad_in_place


def test_the_taggers_lstm_gets_its_meprop_settings():
    cfg = OmegaConf.to_object(compose_config("task=pos", "k=2", "device=cpu", "meprop.input_grad=dense"))
    model = Tagger(30, [4, 5], 6, hidden=8, word_dim=6, feature_dim=3)
    prepare_model(cfg, task=None, model=model, output_layers=("output.0",))
    lstm = next(module for module in model.modules() if isinstance(module, MePropLSTM))
    assert (lstm.k, lstm.gates, lstm.input_grad) == (2, "per_gate", "dense")
