"""`tritonnx zoo`: the table, one model's details, an unknown name."""
from tritonnx import zoo
from tritonnx.cli import main
from tritonnx.commands.zoo import short_paper


def test_zoo_table_lists_every_model(capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["model", "family", "paper", "params", "tiny", "inputs", "(paper)"]
    rows = [line for line in lines[2:] if line[:1].strip()][:-2]  # wrapped cells continue indented; 2 foot lines
    assert [line.split()[0] for line in rows] == zoo.names()
    row = next(line for line in lines if line.startswith("vgg16"))
    assert "138.4M" in row and "input[batch,3,224,224]" in row and "Simonyan & Zisserman" in row
    assert "source[batch,src_seq] int64\n" in out and "target[batch,tgt_seq] int64" in out  # one input a line
    assert "params: of the paper config; tiny: of the tiny config" in out


def test_zoo_table_tiny_inputs(capsys):
    assert main(["zoo", "--config", "tiny"]) == 0
    assert "input[batch,1,20,20]" in capsys.readouterr().out


def test_zoo_details(capsys):
    assert main(["zoo", "lstm_lm"]) == 0
    out = capsys.readouterr().out
    assert "Zaremba, Sutskever, Vinyals, 2014" in out and "19,780,400" in out and "hidden=650" in out
    assert "tokens: {0: 'batch', 1: 'seq'}" in out


def test_zoo_details_of_one_config(capsys):
    assert main(["zoo", "lenet5", "--config", "tiny"]) == 0  # the option used to change nothing
    out = capsys.readouterr().out
    assert "tiny: params" in out and "paper: params" not in out
    assert main(["zoo", "lenet5", "--config", "huge"]) == 2


def test_zoo_unknown_name_is_one_line(capsys):
    assert main(["zoo", "lenet"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("tritonnx zoo: error: unknown zoo model 'lenet'; available: mlp, lenet5")


def test_short_paper():
    assert short_paper("LeCun, Bottou, Bengio, Haffner, 1998, Proc. IEEE") == "LeCun et al. 1998, Proc. IEEE"
    assert short_paper("Hinton, Salakhutdinov, 2006, Science") == "Hinton & Salakhutdinov 2006, Science"
    assert short_paper("Elman, 1990, Cognitive Science; LeCun, Bengio, Hinton, 2015, Nature") == "Elman 1990, Cognitive Science"


def test_zoo_table_with_an_unknown_config_names_the_option(capsys):
    assert main(["zoo", "--config", "huge"]) == 2  # was "zoo model 'mlp' has no config 'huge'"
    assert capsys.readouterr().err == "tritonnx zoo: error: --config huge: expected one of paper, tiny\n"
