"""`skipjoin engine`: the neutral launcher hands each backend's launcher its own argv."""

import pytest

from engine import launch
from engine.sglang import launch as sglang_launch
from engine.vllm import launch as vllm_launch
from router import cli


@pytest.mark.parametrize(("argv", "backend", "rest"), [
    ([], "vllm", []),
    (["--model", "m", "--", "-tp", "2"], "vllm", ["--model", "m", "--", "-tp", "2"]),
    (["--model", "m", "--backend", "vllm"], "vllm", ["--model", "m"]),
    (["--backend", "sglang", "--model", "m", "--mem-fraction-static", "0.6"], "sglang",
     ["--model", "m", "--mem-fraction-static", "0.6"]),
    (["--backend=sglang", "--model", "m", "--", "--port", "1"], "sglang", ["--model", "m", "--port", "1"]),
    (["--model", "m", "--", "--backend", "sglang"], "vllm", ["--model", "m", "--", "--backend", "sglang"]),
])
def test_the_backend_is_picked_and_the_rest_passed_on(argv, backend, rest):
    assert launch.split_backend(argv) == (backend, rest)


@pytest.mark.parametrize("argv", [["--backend", "tgi"], ["--backend"], ["--backend", "--", "x"]])
def test_an_unknown_or_missing_backend_exits_2(argv):
    assert launch.main(argv) == 2


def test_skipjoin_engine_runs_the_chosen_launcher(monkeypatch):
    seen = []
    monkeypatch.setattr(vllm_launch, "main", lambda argv: seen.append(("vllm", argv)) or 0)
    monkeypatch.setattr(sglang_launch, "main", lambda argv: seen.append(("sglang", argv)) or 0)
    assert cli.main(["engine", "--port", "9"]) == 0
    assert cli.main(["engine", "--backend", "sglang", "--model", "m"]) == 0
    assert seen == [("vllm", ["--port", "9"]), ("sglang", ["--model", "m"])]


def test_the_vllm_launcher_alone_parses_its_own_flags():
    args, extra = vllm_launch.parse_args(["--model", "m", "--policy", "fcfs", "--", "--enforce-eager"])
    assert (args.model, args.policy, extra) == ("m", "fcfs", ["--enforce-eager"])
    with pytest.raises(SystemExit):  # the backend is chosen before it: not one of its flags
        vllm_launch.parse_args(["--backend", "sglang"])
