"""A small BERT-style encoder (Vaswani et al. 2017; Devlin et al. 2019; the Turing lecture's
attention): token + learned position embeddings, LayerNorm, post-LN layers of multi-head
self-attention and a GELU feed-forward block, and a linear head over the vocabulary.

`tokens[batch, seq]` int64 -> `logits[batch, seq, vocab]`; no padding mask (every position
attends to every other), seq <= max_len.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .registry import Tensor, ZooEntry, register


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ffn: int):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not a multiple of heads {heads}")
        self.heads = heads
        self.scale = 1.0 / math.sqrt(d_model // heads)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, ffn)
        self.ff2 = nn.Linear(ffn, d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = (y.reshape(n, t, self.heads, -1).transpose(1, 2) for y in self.qkv(x).split(d, -1))
        att = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, -1)
        y = torch.matmul(att, v).transpose(1, 2).reshape(n, t, d)
        x = self.norm1(x + self.proj(y))
        return self.norm2(x + self.ff2(nn.functional.gelu(self.ff1(x))))


class TransformerEncoder(nn.Module):
    def __init__(self, vocab: int, max_len: int, d_model: int, heads: int, ffn: int, layers: int):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, d_model)
        self.position_embedding = nn.Embedding(max_len, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.layers = nn.ModuleList(EncoderLayer(d_model, heads, ffn) for _ in range(layers))
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.norm(self.token_embedding(tokens) + self.position_embedding(positions))
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


register(ZooEntry(
    name="transformer_encoder",
    family="transformer",
    paper="Vaswani et al., 2017, NeurIPS; Devlin, Chang, Lee, Toutanova, 2019, NAACL",
    factory=TransformerEncoder,
    configs={
        "paper": dict(vocab=30522, max_len=512, d_model=256, heads=4, ffn=1024, layers=4, seq_len=128),
        "tiny": dict(vocab=50, max_len=64, d_model=16, heads=2, ffn=32, layers=2, seq_len=6),
    },
    inputs=(Tensor("tokens", ("batch", "seq"), vocab="vocab"),),
    outputs=(Tensor("logits", ("batch", "seq", "vocab")),),
    description="BERT-mini-sized encoder: 4 layers, d=256, 4 heads, GELU FFN 1024, post-LN",
))
