"""`tritonnx bench --resume DIR` alone continues DIR's own sweep (README: "continue, stop cleanly")."""
import json

from bench_fakes import bench_args
from tritonnx.commands import bench as bench_cmd


def _folder(tmp_path, command):
    (tmp_path / "env.json").write_text(json.dumps({"device": "cpu", "command": command, "commands": [command]}))
    return str(tmp_path)


def test_resume_alone_takes_the_original_sweep(tmp_path):
    out = _folder(tmp_path, "tritonnx bench --models lenet5 --config paper --batch 1,64 --dtype fp16 "
                            "--providers tritonnx,onnxruntime --opset 17 --out x --time-budget 5")
    s = bench_cmd.settings_from_args(bench_args(resume=out), on_gpu=False, known_models=["mlp", "lenet5"])
    assert (s.models, s.config, s.batches, s.dtypes, s.opset) == (["lenet5"], "paper", [1, 64], ["fp16"], 17)
    assert s.providers == ["tritonnx", "onnxruntime"]


def test_resume_options_given_again_win(tmp_path):
    out = _folder(tmp_path, "tritonnx bench --models lenet5 --batch 1,64 --out x")
    s = bench_cmd.settings_from_args(bench_args(resume=out, batch="2"), on_gpu=False, known_models=["mlp", "lenet5"])
    assert (s.models, s.batches) == (["lenet5"], [2])


def test_resume_of_a_folder_without_a_bench_command_uses_defaults(tmp_path):
    out = _folder(tmp_path, "tritonnx -x -q tests")
    s = bench_cmd.settings_from_args(bench_args(resume=out), on_gpu=False, known_models=["mlp", "lenet5"])
    assert (s.models, s.batches) == (["mlp", "lenet5"], [1])
