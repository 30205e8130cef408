"""`skipjoin engine --backend sglang`: the flags parse with SGLang's own parser and mean what the
hooks need; a bad policy knob or another SGLang release stops it before any server starts."""

import argparse
import json

import pytest
from sglang.srt.server_args import ServerArgs

from engine.policy import PolicyConfig
from engine.sglang import launch
from engine.sglang.plugin import entry_point_problem, policy_config


def sglang_parse(flags):
    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
    return parser.parse_args(flags)


def test_flags_parse_with_sglangs_parser():
    args = sglang_parse(launch.sglang_flags("/models/smol", 19, []))
    assert args.model_path == "/models/smol"
    assert args.enable_priority_scheduling and args.schedule_low_priority_values_first
    assert args.priority_scheduling_preemption_threshold == 0 and args.schedule_policy == "fcfs"
    assert args.enable_hierarchical_cache and args.hicache_write_policy == "write_back"
    assert args.enable_return_aux_hidden_states and args.speculative_algorithm == "EAGLE3"
    assert args.return_aux_hidden_state_layer_ids == [19] and args.return_hidden_states_mode == "last"


def test_given_flags_replace_defaults():
    flags = launch.sglang_flags("m", None, ["--schedule-policy=lof", "--port", "30001"])
    args = sglang_parse(flags)
    assert args.schedule_policy == "lof" and args.port == 30001 and args.host == "127.0.0.1"
    assert "--enable-return-aux-hidden-states" not in flags and flags.count("--schedule-policy=lof") == 1


def test_bad_policy_knob_exits_before_launch(capsys):
    assert launch.main(["--model", "m", "--policy-json", '{"levels": 0}']) == 2
    assert "levels must be in 1..32" in capsys.readouterr().err
    assert launch.main(["--model", "m", "--policy-json", "[1]"]) == 2
    assert "must be a JSON object" in capsys.readouterr().err


def test_launch_command(monkeypatch):
    """What `skipjoin engine --backend sglang` hands to exec (the lead's CLI calls `main(argv)`)."""
    seen = {}
    monkeypatch.setattr(launch.os, "execvpe", lambda f, cmd, env: seen.update(cmd=cmd, env=env))
    argv = ["--model", "/m", "--policy", "fcfs", "--policy-json", '{"levels": 3}', "--probe-layer", "19",
            "--port", "9000", "--mem-fraction-static", "0.8"]
    assert launch.main(argv) == 0
    cmd = seen["cmd"]
    assert cmd[1:3] == ["-m", "sglang.launch_server"] and cmd[-2:] == ["--mem-fraction-static", "0.8"]
    args = sglang_parse(cmd[3:])
    assert args.model_path == "/m" and args.port == 9000 and args.return_aux_hidden_state_layer_ids == [19]
    assert json.loads(seen["env"]["SKIPJOIN_ENGINE_POLICY_JSON"]) == {"levels": 3, "name": "fcfs"}
    assert policy_config(seen["env"]) == PolicyConfig(name="fcfs", levels=3)


def test_other_sglang_release_exits_before_launch(monkeypatch, capsys):
    monkeypatch.setattr(launch, "installed_version", lambda: "0.5.22")
    assert launch.main(["--model", "m"]) == 2
    assert "sglang==0.5.23, found sglang==0.5.22" in capsys.readouterr().err


def test_embedded_engine_gets_the_same_settings(monkeypatch):
    """`embedded` builds `sglang.Engine(**kwargs)`: every keyword is a ServerArgs field."""
    import os

    import sglang

    seen = {}
    monkeypatch.setattr(sglang, "Engine", lambda **kw: seen.update(kw) or "engine")
    monkeypatch.delenv("SKIPJOIN_ENGINE_POLICY_JSON", raising=False)
    assert launch.embedded("/m", probe_layer=9, policy='{"levels": 4}', mem_fraction_static=0.6) == "engine"
    known = ServerArgs(model_path="dummy", device="cpu")
    assert [k for k in seen if not hasattr(known, k)] == []
    assert seen["enable_priority_scheduling"] is True
    assert seen["priority_scheduling_preemption_threshold"] == 0
    assert seen["return_aux_hidden_state_layer_ids"] == [9] and seen["mem_fraction_static"] == 0.6
    assert os.environ["SKIPJOIN_ENGINE_POLICY_JSON"] == '{"levels": 4}'


def test_refuses_to_start_sglang_that_would_skip_the_plugin(monkeypatch, capsys):
    """`SGLANG_PLUGINS` without skipjoin: SGLang would serve stock scheduling without a word."""
    monkeypatch.setattr(launch.os, "execvpe", lambda *a: pytest.fail("SGLang was started"))
    monkeypatch.setenv("SGLANG_PLUGINS", "none")
    assert launch.main(["--model", "m"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("skipjoin engine: SGLang would run without skipjoin's policy: "
                   "SGLANG_PLUGINS='none' leaves out 'skipjoin'")
    monkeypatch.setenv("SGLANG_PLUGINS", "other, skipjoin")
    assert entry_point_problem(dict(launch.os.environ)) is None
