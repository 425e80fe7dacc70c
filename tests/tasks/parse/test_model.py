"""The parser network: one lookup in the stacked tables equals three lookups and a concatenation."""

import torch

from mesimp.tasks.parse.model import LABEL_FEATURES, TAG_FEATURES, WORD_FEATURES, ParserModel


def test_stacked_lookup_equals_separate_tables_in_values_and_gradients():
    torch.manual_seed(0)
    model = ParserModel(30, 12, 8, 15, [16], embedding_dim=4).double()
    g = torch.Generator().manual_seed(1)
    features = torch.cat([torch.randint(0, n, (6, count), generator=g) for n, count in
                          ((30, WORD_FEATURES), (12, TAG_FEATURES), (8, LABEL_FEATURES))], dim=1)
    words, tags, labels = features.split([WORD_FEATURES, TAG_FEATURES, LABEL_FEATURES], dim=1)
    separate = torch.cat([model.words(words), model.tags(tags), model.labels(labels)], dim=1).flatten(1)
    expected = model.mlp(separate)
    torch.testing.assert_close(model(features), expected, rtol=0, atol=1e-14)
    tables = [model.words.weight, model.tags.weight, model.labels.weight]
    ours = torch.autograd.grad(model(features).square().sum(), tables)
    theirs = torch.autograd.grad(model.mlp(separate).square().sum(), tables)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)
    assert set(model.state_dict()) == {n for n, _ in model.named_parameters()}  # the offsets are not saved
