"""Logs and help (issue 14, item 9): what a person reads, from the real `emotion-edge` command in a subprocess."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from helpers.photo import frame_folder

from emotion_edge.device.model.metadata import packaged_model_path
from emotion_edge.main import build_parser, main


def emotion_edge(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emotion_edge.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def frames_config(tmp_path: Path, log_level: str) -> Path:
    """A daemon config on a looped folder of three frames, with a stats line every frame."""
    frames = frame_folder(tmp_path / "frames")
    config = tmp_path / "config.toml"
    config.write_text(f'[camera]\nsource = "{frames}"\nloop = true\npaced = false\n'
                      f'[model]\npath = "{packaged_model_path()}"\nthreads = 1\n'
                      f'[pipeline]\nstats_interval_s = 0.001\n[log]\nlevel = "{log_level}"\nformat = "text"\n')
    return config


def test_text_stats_lines_carry_their_numbers(tmp_path):
    # Before: the text format printed a bare "stats"; the numbers sat only in `extra`, for the JSON format.
    result = emotion_edge("run", "--config", str(frames_config(tmp_path, "INFO")), "--max-frames", "5")
    assert result.returncode == 0, result.stderr[-2000:]
    stats = [line for line in result.stderr.splitlines() if " stats " in line or line.endswith(" stats")]
    assert stats, result.stderr[-2000:]
    assert all(re.search(r" stats .*\bfps=[0-9.]+", line) and re.search(r"\bframes=\d+", line) for line in stats), stats


def test_verbose_raises_the_log_level_of_run_over_the_config(tmp_path):
    # Before: run set up logging from [log] level after main had honoured -v, so -v did nothing.
    config = str(frames_config(tmp_path, "ERROR"))
    quiet = emotion_edge("run", "--config", config, "--max-frames", "3")
    verbose = emotion_edge("-v", "run", "--config", config, "--max-frames", "3")
    assert quiet.returncode == 0 and verbose.returncode == 0, quiet.stderr[-1000:] + verbose.stderr[-1000:]
    assert " INFO " not in quiet.stderr
    stopped = [line for line in verbose.stderr.splitlines() if " INFO emotion_edge.device.daemon.loop: stopped " in line]
    assert stopped and " frames=3 " in stopped[0], verbose.stderr[-2000:]


def subcommand(name: str) -> argparse.ArgumentParser:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


def test_train_evaluate_and_quantize_options_have_help_and_show_their_defaults():
    # Before: train's --arch, --epochs, --batch-size, ... and evaluate's --protocol, --skip-bad had no help text,
    # so no default showed either; quantize hid all of its defaults.
    for name in ("train", "evaluate", "quantize"):
        parser = subcommand(name)
        shown = " ".join(parser.format_help().split())
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            option = action.option_strings[-1]
            assert action.help, f"{name} {option} has no help text"
            if not action.required and action.default not in (None, False, "", []):
                assert f"default: {action.default}" in shown, f"{name} {option} hides its default {action.default!r}"
    train = " ".join(subcommand("train").format_help().split())
    for shown_default in ("(default: edge-vgg)", "(default: 60)", "(default: 128)", "(default: 0.001)",
                          "(default: 0.1)", "(default: sqrt)", "(default: 1234)"):
        assert shown_default in train
    assert "(default: 300)" in " ".join(subcommand("quantize").format_help().split())


RETRAIN = ["retrain", "--data", "fer2013.csv", "--run-dir", "runs/x", "--out", "models/x.tflite"]


def test_retrain_no_deploy_needs_no_devices_and_a_deploy_says_which_options_it_needs(capsys):
    # Before: argparse demanded --host or --inventory even with --no-deploy, which deploys nowhere.
    args = build_parser().parse_args([*RETRAIN, "--no-deploy"])
    assert args.no_deploy and args.host is None and args.inventory is None
    assert main(RETRAIN) == 2  # refused before anything slow: no training starts
    err = capsys.readouterr().err
    assert "--host" in err and "--inventory" in err and "--no-deploy" in err, err


def test_analyze_with_annotate_at_an_existing_file_says_so_and_still_prints_every_result(tmp_path):
    # Before: a bare "[Errno 17] File exists" and no result for any file.
    images = []
    for name in ("a.png", "b.png"):
        images.append(tmp_path / name)
        assert cv2.imwrite(str(images[-1]), np.full((120, 160, 3), 90, np.uint8))
    taken = tmp_path / "out.jpg"
    taken.write_bytes(b"an existing file")
    result = emotion_edge("analyze", *map(str, images), "--annotate", str(taken))
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"--annotate {taken}: is a file, not a folder" in result.stderr and "give a folder path" in result.stderr
    assert "Errno" not in result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [str(p) for p in images], result.stdout
    assert taken.read_bytes() == b"an existing file"


def test_a_bad_bind_address_is_named_as_such_not_as_a_missing_token(tmp_path):
    # Before: 127.0.0.999 did not parse, so it was "not loopback", and serve said it needed a token.
    result = emotion_edge("serve", "--bind", "127.0.0.999", "--port", "0", timeout=60)
    assert result.returncode == 2
    assert "--bind" in result.stderr and "'127.0.0.999' is not a valid IP address" in result.stderr, result.stderr
    assert "token" not in result.stderr
    config = tmp_path / "config.toml"
    config.write_text('[http]\nbind = "127.0.0.999"\n')
    result = emotion_edge("serve", "--config", str(config), "--port", "0", timeout=60)
    assert result.returncode == 2 and "'127.0.0.999' is not a valid IP address" in result.stderr, result.stderr
    assert "bind" in result.stderr and "token" not in result.stderr
