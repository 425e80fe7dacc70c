"""The tagger: its directions against torch.nn.LSTM, and meSimp's compaction against a masked tagger (float64)."""

import pytest
import torch
from torch import nn

from mesimp.simplify import compact_group
from mesimp.tasks.pos.model import Tagger, tagger_unit_groups

WORDS, FEATURE_SIZES, TAGS, HIDDEN = 30, [5, 9, 9, 9, 9, 4, 4], 6, 6
LENGTHS = torch.tensor([5, 2, 4])


def tagger(bidirectional=False, seed=0):
    torch.manual_seed(seed)
    return Tagger(WORDS, FEATURE_SIZES, TAGS, HIDDEN, word_dim=4, feature_dim=3,
                  bidirectional=bidirectional).double()


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    words = torch.randint(0, WORDS, (5, 3), generator=g)
    features = torch.stack([torch.randint(0, n, (5, 3), generator=g) for n in FEATURE_SIZES], dim=-1)
    return words, features, LENGTHS


def test_bidirectional_tagger_equals_torch_bidirectional_lstm():
    model = tagger(bidirectional=True)
    words, features, lengths = batch()
    reference = nn.LSTM(model.lstms[0].input_size, HIDDEN, bidirectional=True).double()
    with torch.no_grad():
        for suffix, lstm in (("", model.lstms[0]), ("_reverse", model.lstms[1])):
            getattr(reference, f"weight_ih_l0{suffix}").copy_(lstm.weight_ih)
            getattr(reference, f"weight_hh_l0{suffix}").copy_(lstm.weight_hh)
            getattr(reference, f"bias_ih_l0{suffix}").copy_(lstm.bias)
            getattr(reference, f"bias_hh_l0{suffix}").zero_()
    x = torch.cat([model.words(words), *[t(features[..., i]) for i, t in enumerate(model.features)]], dim=-1)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    states = nn.utils.rnn.pad_packed_sequence(reference(packed)[0], total_length=5)[0]
    weight = torch.cat([model.output[0].weight, model.output[1].weight], dim=1)
    expected = states @ weight.t() + model.output[0].bias
    real = (torch.arange(5).unsqueeze(1) < lengths)
    torch.testing.assert_close(model(words, features, lengths)[real], expected[real], rtol=0, atol=1e-13)


def masked_copy(model, keep, direction):
    """The tagger with the other units of one direction silenced: all their weights and columns zero."""
    masked = tagger(bidirectional=len(model.lstms) == 2)
    masked.load_state_dict(model.state_dict())
    drop = torch.ones(HIDDEN, dtype=torch.bool)
    drop[keep] = False
    lstm = masked.lstms[direction]
    with torch.no_grad():
        for gate in range(4):
            rows = torch.nonzero(drop).flatten() + gate * HIDDEN
            lstm.weight_ih[rows] = 0
            lstm.weight_hh[rows] = 0
            lstm.bias[rows] = 0
        lstm.weight_hh[:, drop] = 0
        masked.output[direction].weight[:, drop] = 0
    return masked


@pytest.mark.parametrize("bidirectional,direction", [(False, 0), (True, 0), (True, 1)])
@pytest.mark.parametrize("k", [None, 3])
def test_masked_and_compacted_taggers_agree(bidirectional, direction, k):
    model = tagger(bidirectional)
    keep = torch.tensor([0, 2, 3])
    masked = masked_copy(model, keep, direction)
    compacted = tagger(bidirectional)
    compacted.load_state_dict(masked.state_dict())
    group = tagger_unit_groups(compacted)[direction]
    compact_group(group, keep)
    assert compacted.hidden_dims[direction] == 3 and compacted.output[direction].in_features == 3
    for m in (masked, compacted):
        for lstm in m.lstms:
            lstm.k = k
    words, features, lengths = batch()
    scores = {}
    for name, m in (("masked", masked), ("compacted", compacted)):
        scores[name] = m(words, features, lengths)
        torch.manual_seed(2)
        (scores[name] * torch.randn_like(scores[name])).sum().backward()
    torch.testing.assert_close(scores["masked"], scores["compacted"], rtol=0, atol=1e-13)
    rows = torch.cat([keep + gate * HIDDEN for gate in range(4)])  # the kept units' rows in the four gates
    cut = {f"lstms.{direction}.weight_ih": lambda g: g[rows], f"lstms.{direction}.weight_hh": lambda g: g[rows][:, keep],
           f"lstms.{direction}.bias": lambda g: g[rows], f"output.{direction}.weight": lambda g: g[:, keep]}
    masked_params = dict(masked.named_parameters())
    for name, param in compacted.named_parameters():
        expected = cut.get(name, lambda g: g)(masked_params[name].grad)
        torch.testing.assert_close(param.grad, expected, rtol=0, atol=1e-13, msg=name)


def test_unit_activeness_sums_each_units_gate_hits_per_token():
    model = tagger()
    (group,) = tagger_unit_groups(model)
    lstm = model.lstms[0]
    lstm.k = 4
    reports = []
    lstm.register_report_hook(reports.append)
    words, features, lengths = batch()
    model(words, features, lengths).sum().backward()
    (report,) = reports
    assert report.rows == int(lengths.sum())
    per_unit = torch.zeros(HIDDEN, dtype=torch.int64)
    for entry in report.indices.flatten().tolist():
        per_unit[entry % HIDDEN] += 1
    assert torch.equal(group.unit_counts(report.counts()), per_unit) and int(per_unit.sum()) == 4 * report.rows
