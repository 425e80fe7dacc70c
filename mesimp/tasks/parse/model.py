"""The Chen & Manning (2014) parser network: embeddings of the 48 features, then an MLP over their concatenation.

Words, tags and arc labels have their own embedding tables (``embedding_dim`` each, 50 in the paper:
48 x 50 = 2,400 inputs). Embeddings start random (N(0, 0.01)); with ``model.pretrained_embeddings`` the word rows
start from a file of vectors instead, as Chen & Manning's started from 50-d pretrained ones.
The hidden activation is ReLU: the meProp paper does not name one (Chen & Manning used the cube), and ReLU is
what the authors' MNIST code uses. The MLP is :class:`mesimp.nn.mlp.MLP`, so meProp conversion and meSimp's
unit groups work on ``mlp.hidden.*`` and ``mlp.output`` unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mesimp.nn.lookup import lookup
from mesimp.nn.mlp import MLP

WORD_FEATURES, TAG_FEATURES, LABEL_FEATURES = 18, 18, 12


class ParserModel(nn.Module):
    def __init__(self, num_words: int, num_tags: int, num_labels: int, num_transitions: int,
                 hidden: list[int], embedding_dim: int = 50, dropout: float = 0.0) -> None:
        super().__init__()
        self.words = nn.Embedding(num_words, embedding_dim)
        self.tags = nn.Embedding(num_tags, embedding_dim)
        self.labels = nn.Embedding(num_labels, embedding_dim)
        for table in (self.words, self.tags, self.labels):
            nn.init.normal_(table.weight, std=0.01)
        inputs = (WORD_FEATURES + TAG_FEATURES + LABEL_FEATURES) * embedding_dim
        self.mlp = MLP(inputs, hidden, num_transitions, dropout=dropout)
        # each feature's row offset in the three tables stacked (not saved: the state_dict keeps three tables)
        offsets = [0] * WORD_FEATURES + [num_words] * TAG_FEATURES + [num_words + num_tags] * LABEL_FEATURES
        self.register_buffer("offsets", torch.tensor(offsets), persistent=False)

    @property
    def hidden_dims(self) -> list[int]:
        return self.mlp.hidden_dims

    def forward(self, features: Tensor) -> Tensor:
        """Scores of every transition for a batch of configurations: (batch, 48) ids -> (batch, transitions)."""
        # One lookup in the stacked tables writes the MLP's input directly: three lookups and a concatenation
        # would copy the (batch, 2,400) input twice, a large share of a narrow (meSimp-sized) parser's time.
        table = torch.cat([self.words.weight, self.tags.weight, self.labels.weight])
        return self.mlp(lookup(features + self.offsets, table).flatten(1))
