import pytest
import torch
from torch import nn

from mesimp.nn import MePropLinear, convert_to_meprop, k_for_width


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 20), nn.ReLU(), nn.Sequential(nn.Linear(20, 10), nn.ReLU()), nn.Linear(10, 3))


def test_converts_all_but_excluded_and_keeps_state_dict():
    model = mlp()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    x = torch.randn(4, 8)
    y_before = model(x)
    names = convert_to_meprop(model, k=4, exclude=["3"], scope="batch")
    assert names == ["0", "2.0"]
    assert isinstance(model[0], MePropLinear) and isinstance(model[2][0], MePropLinear)
    assert type(model[3]) is nn.Linear
    assert model[0].k == 4 and model[0].scope == "batch"
    assert list(model.state_dict()) == list(before)
    torch.testing.assert_close(model(x), y_before, rtol=0, atol=0)


def test_k_ratio_per_layer_width():
    model = mlp()
    convert_to_meprop(model, k_ratio=0.25)
    assert [model[0].k, model[2][0].k, model[3].k] == [5, 2, 1]


def test_converted_layers_share_parameters():
    model = mlp()
    weight = model[0].weight
    convert_to_meprop(model, k=2)
    assert model[0].weight is weight


@pytest.mark.parametrize("k,ratio", [(2, 0.5), (None, 0.0), (None, 1.5)])
def test_bad_k_choices(k, ratio):
    with pytest.raises(ValueError):
        k_for_width(10, k, ratio)


def test_unknown_exclude_name():
    with pytest.raises(ValueError, match="output"):
        convert_to_meprop(mlp(), k=2, exclude=["output"])
