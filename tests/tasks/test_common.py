"""The task pipelines' shared model setup."""

from omegaconf import OmegaConf

from mesimp.nn import MePropLinear
from mesimp.nn.mlp import MLP
from mesimp.tasks.common import prepare_model
from tests.helpers import compose_config


def test_meprop_layers_add_into_grad_the_dense_output_layer_does_not():
    """The training loop reads .grad after backward(): its meProp layers may add their dL/dW into it in place."""
    cfg = OmegaConf.to_object(compose_config("task=mnist", "k=3", "device=cpu"))
    model = MLP(12, [8, 8], 3)
    built = prepare_model(cfg, task=None, model=model)
    assert built.tracked_layers == {"hidden.0", "hidden.1"}
    assert all(model.get_submodule(name).grad_in_place for name in built.tracked_layers)
    assert isinstance(model.output, MePropLinear) and not model.output.grad_in_place
