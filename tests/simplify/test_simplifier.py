"""Activeness counting, the pruning rule, the schedule, and the simplifier's resume state."""

import pytest
import torch

from mesimp.nn import convert_to_meprop
from mesimp.nn.mlp import MLP, mlp_unit_groups
from mesimp.simplify import ActivenessRecord, OptimizerReset, Simplifier, SimplifySchedule


def test_threshold_is_floor_of_rate_times_examples():
    record = ActivenessRecord(4)
    record.add(torch.tensor([0, 2, 3, 9]), examples=29)  # threshold int(0.1 * 29) = 2
    assert record.keep(0.1).tolist() == [1, 2, 3]
    assert record.keep(0.0).tolist() == [0, 1, 2, 3]
    record.reset()
    assert record.examples == 0 and record.hits.sum() == 0


def test_relative_threshold_is_rate_times_the_average_units_count():
    record = ActivenessRecord(4)
    record.add(torch.tensor([0, 2, 4, 10]), examples=40)  # average count 4
    assert record.keep(0.5, relative=True).tolist() == [1, 2, 3]  # threshold 2
    assert record.keep(0.75, relative=True).tolist() == [2, 3]  # threshold 3
    assert record.keep(0.1).tolist() == [2, 3]  # absolute: 0.1 * 40 examples = 4


def make(k, **kwargs):
    torch.manual_seed(0)
    model = MLP(6, [8, 7], 3)
    convert_to_meprop(model, k, exclude=["output"])
    return model, Simplifier(mlp_unit_groups(model), schedule=SimplifySchedule(), **kwargs)


def backprop(model, rows=5):
    model(torch.randn(rows, 6)).square().sum().backward()


def test_records_count_kept_units_per_example():
    model, simplifier = make(2, prune_rate=0.1)
    backprop(model, rows=5)
    backprop(model, rows=3)
    for record in simplifier.records.values():
        assert record.examples == 8 and record.hits.sum().item() == 8 * 2


def test_step_removes_rarely_kept_units_and_resets_counts():
    model, simplifier = make(2, prune_rate=0.3)
    for _ in range(10):
        backprop(model)
    expected = [int((rec.hits >= int(0.3 * rec.examples)).sum()) for rec in simplifier.records.values()]
    dims = simplifier.step(None, train_step=10)
    assert dims == expected == model.hidden_dims and dims[0] < 8
    assert simplifier.history == [{"step": 10, "dims": dims}]
    assert all(rec.examples == 0 and len(rec.hits) == d for rec, d in zip(simplifier.records.values(), dims))
    backprop(model)  # the shrunk model still trains


def test_dense_layers_keep_every_unit():
    model, simplifier = make(None, prune_rate=0.5)
    backprop(model)
    assert simplifier.step(None, 1) == [8, 7]


def test_a_layer_keeps_at_least_one_unit():
    model, simplifier = make(1, prune_rate=0.99)
    backprop(model, rows=1)
    assert all(d >= 1 for d in simplifier.step(None, 1))


def test_k_fixed_or_scaled_with_width():
    model, simplifier = make(4, prune_rate=0.3)
    for _ in range(5):
        backprop(model)
    simplifier.step(None, 1)
    assert model.hidden[0].k == 4
    model, simplifier = make(4, prune_rate=0.3, scale_k=True)
    for _ in range(5):
        backprop(model)
    simplifier.step(None, 1)
    assert model.hidden[0].k == max(1, round(4 / 8 * model.hidden[0].out_features))


def test_state_dict_restores_shapes_counts_and_history():
    model, simplifier = make(2, prune_rate=0.3)
    for _ in range(5):
        backprop(model)
    simplifier.step(None, 5)
    backprop(model)
    state, weights = simplifier.state_dict(), model.state_dict()

    fresh, restored = make(2, prune_rate=0.3)
    restored.load_state_dict(state)
    fresh.load_state_dict(weights)
    assert fresh.hidden_dims == model.hidden_dims and restored.history == simplifier.history
    for name, record in simplifier.records.items():
        assert torch.equal(restored.records[name].hits, record.hits)
        assert restored.records[name].examples == record.examples


@pytest.mark.parametrize("rate", [-0.1, 1.0])
def test_prune_rate_range(rate):
    with pytest.raises(ValueError):
        make(2, prune_rate=rate)


def test_schedule_alternates_cycles_and_spaces_prunes():
    schedule = SimplifySchedule(cycle_epochs=5, prunes_per_epoch=8)
    assert [schedule.simplifying(e) for e in range(20)] == ([True] * 5 + [False] * 5) * 2
    assert schedule.prune_points(0, 550) == [69, 138, 206, 275, 344, 412, 481, 550]
    assert schedule.prune_points(5, 550) == []
    assert schedule.prune_points(0, 3) == [1, 2, 3]
    assert [e for e in range(20) if schedule.fresh_optimizer_at_start(e)] == [5, 10, 15]
    authors = SimplifySchedule(optimizer_reset=OptimizerReset.authors)
    assert [e for e in range(20) if authors.zero_moments_after_chunk(e)] == [4, 9, 14, 19]
    assert not any(SimplifySchedule(optimizer_reset=OptimizerReset.none).fresh_optimizer_at_start(e) for e in range(20))


def test_warmup_delays_the_cycles_and_counts_as_one():
    schedule = SimplifySchedule(cycle_epochs=5, prunes_per_epoch=1, warmup_epochs=3)
    assert [e for e in range(20) if schedule.simplifying(e)] == [3, 4, 5, 6, 7, 13, 14, 15, 16, 17]
    assert schedule.prune_points(2, 17) == [] and schedule.prune_points(3, 17) == [17]
    assert [e for e in range(20) if schedule.fresh_optimizer_at_start(e)] == [3, 8, 13, 18]
    authors = SimplifySchedule(optimizer_reset=OptimizerReset.authors, warmup_epochs=3)
    assert [e for e in range(20) if authors.zero_moments_after_chunk(e)] == [2, 7, 12, 17]
