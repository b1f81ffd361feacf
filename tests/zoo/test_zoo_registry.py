"""The zoo registry (contract 1): names, entries, configs, inputs, deterministic weights."""
import pytest
import torch
from torch import nn

from tritonnx import zoo
from tritonnx.errors import InvalidArgument

MODELS = (
    "mlp", "lenet5", "alexnet", "vgg16", "googlenet", "resnet18", "rnn_lm", "char_lstm", "lstm_lm",
    "gru_lm", "seq2seq", "bilstm_speech", "captioner", "nplm", "autoencoder", "dcgan",
    "transformer_encoder",
)
RECURRENT = {"rnn_lm": nn.RNN, "char_lstm": nn.LSTM, "lstm_lm": nn.LSTM, "gru_lm": nn.GRU,
             "seq2seq": nn.LSTM, "bilstm_speech": nn.LSTM, "captioner": nn.LSTM}


def test_names_are_the_seventeen_models_in_order():
    assert zoo.names() == list(MODELS)


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(InvalidArgument, match="unknown zoo model 'lenet'; available: mlp, lenet5, alexnet"):
        zoo.get("lenet")


def test_unknown_config_is_invalid_argument():
    with pytest.raises(InvalidArgument, match="no config 'huge'"):
        zoo.get("mlp").build("huge")


@pytest.mark.parametrize("name", MODELS)
def test_entry_fields(name):
    e = zoo.get(name)
    assert e.name == name
    assert e.family in {"mlp", "cnn", "rnn", "gan", "transformer"}
    assert e.paper.count(",") >= 2 and any(ch.isdigit() for ch in e.paper)
    assert e.input_names and e.output_names
    for tensor in (*e.input_names, *e.output_names):
        assert e.dynamic_axes[tensor][0] == "batch"
    assert e.is_sequence == (name in RECURRENT or name == "transformer_encoder")
    if e.is_sequence:
        assert any(1 in e.dynamic_axes[n] for n in e.input_names)
    assert 0 < e.param_count("tiny") < 20_000 < e.param_count("paper")


@pytest.mark.parametrize("name", MODELS)
def test_tiny_forward_shapes_and_seeded_weights(name):
    e = zoo.get(name)
    model = e.build("tiny", seed=3)
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == e.param_count("tiny")
    if name in RECURRENT:
        assert any(isinstance(m, RECURRENT[name]) for m in model.modules())
    inputs = e.example_inputs("tiny", batch=2, seq_len=4, seed=1)
    assert len(inputs) == len(e.input_names)
    for x, n in zip(inputs, e.input_names):
        assert x.shape[0] == 2
        if 1 in e.dynamic_axes.get(n, {}):
            assert x.shape[1] in (4, 5)
    with torch.no_grad():
        y = model(*inputs)
        y2 = e.build("tiny", seed=3)(*inputs)
        y3 = e.build("tiny", seed=4)(*inputs)
    assert y.shape[0] == 2 and torch.isfinite(y).all()
    assert torch.equal(y, y2)
    assert not torch.equal(y, y3)


def test_example_inputs_are_seeded_and_in_range():
    e = zoo.get("seq2seq")
    a = e.example_inputs("tiny", batch=3, seq_len=7, seed=5)
    b = e.example_inputs("tiny", batch=3, seq_len=7, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    src, tgt = a
    assert src.shape == (3, 7) and tgt.shape == (3, 8) and src.dtype == torch.int64
    assert int(src.max()) < 20 and int(tgt.max()) < 24 and int(src.min()) >= 0
    with pytest.raises(InvalidArgument, match="batch must be >= 1"):
        e.example_inputs("tiny", batch=0)


def test_state_dict_round_trip_and_mismatch():
    e = zoo.get("lenet5")
    trained = e.build("tiny", seed=9).state_dict()
    model = e.build("tiny", seed=0, state_dict=trained)
    assert all(torch.equal(trained[k], v) for k, v in model.state_dict().items())
    with pytest.raises(InvalidArgument, match="state_dict does not fit zoo model 'lenet5'"):
        e.build("paper", state_dict=trained)


def test_batchnorm_statistics_are_randomised():
    bn = next(m for m in zoo.get("resnet18").build("tiny").modules() if isinstance(m, nn.BatchNorm2d))
    assert not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert not torch.equal(bn.running_var, torch.ones_like(bn.running_var))
