"""Recurrent nets: the Elman RNN, char-rnn, the Zaremba word LSTM, a GRU language model, the
deep bidirectional LSTM acoustic model, the seq2seq encoder-decoder, the image captioner.

Every recurrent layer is an `nn.RNN` / `nn.LSTM` / `nn.GRU` (batch-first), which the
exporter turns into one ONNX RNN / LSTM / GRU node per layer with a dynamic sequence length.
Token inputs are `[batch, seq]` int64; logits come out `[batch, seq, vocab]`.
"""
from __future__ import annotations

import torch
from torch import nn

from .cnn import GOOGLENET_STAGES, GoogLeNet
from .registry import Tensor, ZooEntry, register

_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentLM(nn.Module):
    """Embedding -> `layers` stacked recurrent layers -> linear decoder over the vocabulary.

    Args:
        cell: "rnn" (Elman, tanh), "lstm" or "gru".
        vocab, embed, hidden, layers: the sizes.
        dropout: between layers (inactive in eval mode; kept for trained weights' sake).
    """

    def __init__(self, cell: str, vocab: int, embed: int, hidden: int, layers: int, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        kwargs = dict(nonlinearity="tanh") if cell == "rnn" else {}
        self.rnn = _CELLS[cell](embed, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0, **kwargs)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(self.embedding(tokens))
        return self.decoder(y)


class BiLSTMAcoustic(nn.Module):
    """Graves, Mohamed & Hinton 2013: a deep bidirectional LSTM over filterbank frames, with a
    linear output per frame (phone classes plus the CTC blank); `features[batch, seq, in]`."""

    def __init__(self, in_features: int, hidden: int, layers: int, num_classes: int):
        super().__init__()
        self.lstm = nn.LSTM(in_features, hidden, layers, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(features)
        return self.out(y)


class Seq2Seq(nn.Module):
    """Sutskever, Vinyals & Le 2014: a deep LSTM reads the (reversed) source; its final states
    start a deep LSTM decoder fed the target tokens (teacher forcing). One graph:
    `source[batch, src_seq]`, `target[batch, tgt_seq]` -> `logits[batch, tgt_seq, tgt_vocab]`."""

    def __init__(self, src_vocab: int, tgt_vocab: int, embed: int, hidden: int, layers: int, reverse_source: bool = True):
        super().__init__()
        self.reverse_source = reverse_source
        self.src_embedding = nn.Embedding(src_vocab, embed)
        self.tgt_embedding = nn.Embedding(tgt_vocab, embed)
        self.encoder = nn.LSTM(embed, hidden, layers, batch_first=True)
        self.decoder = nn.LSTM(embed, hidden, layers, batch_first=True)
        self.out = nn.Linear(hidden, tgt_vocab)

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.reverse_source:
            source = torch.flip(source, [1])
        _, state = self.encoder(self.src_embedding(source))
        y, _ = self.decoder(self.tgt_embedding(target), state)
        return self.out(y)


class Captioner(nn.Module):
    """Vinyals et al. 2015 (Show and Tell): a GoogLeNet trunk encodes the image into one
    embedding, fed to an LSTM as step 0; the caption's words follow (teacher forcing).
    `image[batch, C, S, S]`, `tokens[batch, seq]` -> `logits[batch, seq + 1, vocab]`."""

    def __init__(self, in_channels: int, image_size: int, cnn: dict, vocab: int, embed: int, hidden: int, layers: int = 1):
        super().__init__()
        self.cnn = GoogLeNet(in_channels, image_size, num_classes=1, **cnn)
        self.cnn.fc = nn.Identity()
        self.image_embedding = nn.Linear(self.cnn.out_channels, embed)
        self.word_embedding = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, layers, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        img = self.image_embedding(self.cnn.features(image)).unsqueeze(1)
        y, _ = self.lstm(torch.cat([img, self.word_embedding(tokens)], 1))
        return self.out(y)


def _lm(cell: str):
    def factory(**kwargs) -> RecurrentLM:
        return RecurrentLM(cell, **kwargs)
    factory.__name__ = f"{cell}_lm"
    return factory


def _lm_entry(name: str, cell: str, paper: str, paper_cfg: dict, tiny_cfg: dict, description: str) -> ZooEntry:
    return register(ZooEntry(
        name=name,
        family="rnn",
        paper=paper,
        factory=_lm(cell),
        configs={"paper": paper_cfg, "tiny": tiny_cfg},
        inputs=(Tensor("tokens", ("batch", "seq"), vocab="vocab"),),
        outputs=(Tensor("logits", ("batch", "seq", "vocab")),),
        description=description,
    ))


_lm_entry(
    "rnn_lm", "rnn", "Elman, 1990, Cognitive Science; LeCun, Bengio, Hinton, 2015, Nature (Fig. 5)",
    dict(vocab=65, embed=65, hidden=512, layers=1, seq_len=100),
    dict(vocab=11, embed=8, hidden=8, layers=1, seq_len=6),
    "Elman (tanh) recurrent character language model",
)

_lm_entry(
    "char_lstm", "lstm", "Karpathy, Johnson, Fei-Fei, 2015, arXiv:1506.02078 (char-rnn)",
    dict(vocab=65, embed=65, hidden=512, layers=2, dropout=0.5, seq_len=100),
    dict(vocab=11, embed=8, hidden=8, layers=2, dropout=0.5, seq_len=6),
    "char-rnn: 2 x 512 LSTM over characters (embedding width = vocab, as its one-hot input)",
)

_lm_entry(
    "lstm_lm", "lstm", "Zaremba, Sutskever, Vinyals, 2014, arXiv:1409.2329",
    dict(vocab=10000, embed=650, hidden=650, layers=2, dropout=0.5, seq_len=35),
    dict(vocab=50, embed=16, hidden=16, layers=2, dropout=0.5, seq_len=6),
    "medium word-level LSTM LM: 2 x 650, 10k vocabulary (Penn Treebank), 35 steps",
)

_lm_entry(
    "gru_lm", "gru", "Cho, van Merrienboer, Gulcehre, Bahdanau, Bougares, Schwenk, Bengio, 2014, EMNLP",
    dict(vocab=10000, embed=620, hidden=1000, layers=1, seq_len=35),
    dict(vocab=50, embed=16, hidden=16, layers=1, seq_len=6),
    "GRU (gated recurrent unit) word language model, 1000 units",
)

register(ZooEntry(
    name="bilstm_speech",
    family="rnn",
    paper="Graves, Mohamed, Hinton, 2013, ICASSP",
    factory=BiLSTMAcoustic,
    configs={
        "paper": dict(in_features=123, hidden=250, layers=3, num_classes=62, seq_len=200),
        "tiny": dict(in_features=8, hidden=8, layers=2, num_classes=6, seq_len=6),
    },
    inputs=(Tensor("features", ("batch", "seq", "in_features")),),
    outputs=(Tensor("logits", ("batch", "seq", "num_classes")),),
    description="deep bidirectional LSTM acoustic model (3 x 250 per direction, 61 phones + blank)",
))

register(ZooEntry(
    name="seq2seq",
    family="rnn",
    paper="Sutskever, Vinyals, Le, 2014, NeurIPS",
    factory=Seq2Seq,
    configs={
        "paper": dict(src_vocab=160000, tgt_vocab=80000, embed=1000, hidden=1000, layers=4, seq_len=30),
        "tiny": dict(src_vocab=20, tgt_vocab=24, embed=8, hidden=16, layers=2, seq_len=5),
    },
    inputs=(
        Tensor("source", ("batch", "src_seq"), vocab="src_vocab"),
        Tensor("target", ("batch", "tgt_seq"), vocab="tgt_vocab"),
    ),
    outputs=(Tensor("logits", ("batch", "tgt_seq", "tgt_vocab")),),
    description="4 x 1000 LSTM encoder-decoder, reversed source; one graph with a teacher-forced decoder",
))

register(ZooEntry(
    name="captioner",
    family="rnn",
    paper="Vinyals, Toshev, Bengio, Erhan, 2015, CVPR; LeCun, Bengio, Hinton, 2015, Nature (Fig. 3)",
    factory=Captioner,
    configs={
        "paper": dict(in_channels=3, image_size=224,
                      cnn=dict(stem=(64, 64, 192), stages=GOOGLENET_STAGES),
                      vocab=10000, embed=512, hidden=512, layers=1, seq_len=16),
        "tiny": dict(in_channels=3, image_size=16,
                     cnn=dict(stem=(4, 4, 8), stages=(((4, 4, 8, 2, 4, 4),),)),
                     vocab=30, embed=8, hidden=8, layers=1, seq_len=5),
    },
    inputs=(
        Tensor("image", ("batch", "in_channels", "image_size", "image_size")),
        Tensor("tokens", ("batch", "seq"), vocab="vocab"),
    ),
    outputs=(Tensor("logits", ("batch", "steps", "vocab")),),
    description="GoogLeNet image encoder + 512-unit LSTM caption decoder (image as step 0)",
))
