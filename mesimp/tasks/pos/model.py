"""The paper's POS tagger: word embedding (50) + 7 spelling-feature embeddings (20 each) = 190 inputs, one
LSTM layer (h = 500) with meProp inside it, and a dense output layer over the tags.

Bidirectional is an option (``bidirectional=True``): a second MePropLSTM reads each sentence right to left.
Each direction has its own output map (the forward one carries the bias), which is the same function as one
output layer over the concatenated states but lets meSimp remove a direction's units without index
bookkeeping. Dropout, when set, applies to the LSTM outputs (where the paper's Table 4 puts no detail).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mesimp.nn import MePropLSTM
from mesimp.simplify import ParamSlice, UnitGroup


class Tagger(nn.Module):
    def __init__(self, num_words: int, feature_sizes: list[int], num_tags: int, hidden: int, word_dim: int = 50,
                 feature_dim: int = 20, bidirectional: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.words = nn.Embedding(num_words, word_dim)
        self.features = nn.ModuleList(nn.Embedding(size, feature_dim) for size in feature_sizes)
        inputs = word_dim + feature_dim * len(feature_sizes)
        directions = 2 if bidirectional else 1
        self.lstms = nn.ModuleList(MePropLSTM(inputs, hidden) for _ in range(directions))
        self.output = nn.ModuleList(nn.Linear(hidden, num_tags, bias=d == 0) for d in range(directions))
        self.dropout = nn.Dropout(dropout)

    @property
    def hidden_dims(self) -> list[int]:
        return [lstm.hidden_size for lstm in self.lstms]

    def forward(self, words: Tensor, features: Tensor, lengths: Tensor) -> Tensor:
        """Tag scores (T, B, tags) for time-major word ids (T, B), feature ids (T, B, 7) and lengths (B,)."""
        x = torch.cat([self.words(words), *[table(features[..., i]) for i, table in enumerate(self.features)]],
                      dim=-1)
        states = [self.lstms[0](x, lengths)]
        if len(self.lstms) == 2:
            flip = _reversal(lengths, words.shape[0]).to(x.device)
            states.append(self.lstms[1](x.gather(0, flip.unsqueeze(-1).expand_as(x)), lengths)
                          .gather(0, flip.unsqueeze(-1).expand(-1, -1, self.lstms[1].hidden_size)))
        return sum(output(self.dropout(h)) for output, h in zip(self.output, states))


def _reversal(lengths: Tensor, steps: int) -> Tensor:
    """(T, B) time indices that reverse each sequence within its length (padding stays in place)."""
    t = torch.arange(steps).unsqueeze(1)
    return torch.where(t < lengths, lengths - 1 - t, t)


def tagger_unit_groups(tagger: Tagger) -> list[UnitGroup]:
    """meSimp's view of the tagger: the hidden units of each direction.

    Unit j of an LSTM owns its rows in all four gates of ``weight_ih``, ``weight_hh`` and ``bias``, its column
    of ``weight_hh`` (what the others read of it at the next step) and its column of its output map. Its
    activeness is the number of its gate entries in the kept set, summed over the four gates, per token.
    """
    groups = []
    for d, (lstm, output) in enumerate(zip(tagger.lstms, tagger.output)):
        slices = [ParamSlice(lstm, "weight_ih", 0, blocks=4), ParamSlice(lstm, "weight_hh", 0, blocks=4),
                  ParamSlice(lstm, "bias", 0, blocks=4), ParamSlice(lstm, "weight_hh", 1),
                  ParamSlice(output, "weight", 1)]
        groups.append(UnitGroup(f"lstms.{d}", lstm, slices, blocks=4))
    return groups
