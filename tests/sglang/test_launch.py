"""`skipjoin engine --backend sglang`: the flags parse with SGLang's own parser and mean what the
hooks need; a bad policy knob or another SGLang release stops it before any server starts."""

import argparse

from sglang.srt.server_args import ServerArgs

from engine.sglang import launch


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
    assert args.schedule_policy == "lof" and args.port == 30001
    assert "--enable-return-aux-hidden-states" not in flags and flags.count("--schedule-policy=lof") == 1


def test_bad_policy_knob_exits_before_launch(capsys):
    assert launch.main(["--model", "m", "--policy", '{"levels": 0}']) == 2
    assert "levels must be in 1..32" in capsys.readouterr().err


def test_other_sglang_release_exits_before_launch(monkeypatch, capsys):
    monkeypatch.setattr(launch, "installed_version", lambda: "0.5.22")
    assert launch.main(["--model", "m"]) == 2
    assert "sglang==0.5.23, found sglang==0.5.22" in capsys.readouterr().err
