"""The sampling arguments every synthesis script shares (`gradtts_tf.cli`)."""

import argparse

import pytest

import evaluate
import inference
from gradtts_tf.cli import add_sampling_arguments, check_sampling_arguments
from gradtts_tf.export import run_tflite


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_sampling_arguments(parser)
    args = parser.parse_args(argv)
    check_sampling_arguments(parser, args)
    return args


def test_unset_arguments_stay_none_for_the_voice_to_fill():
    args = _parse([])
    assert (args.steps, args.temperature, args.length_scale) == (None, None, None)
    args = _parse(["--steps", "1", "--temperature", "0.5", "--length-scale", "2"])
    assert (args.steps, args.temperature, args.length_scale) == (1, 0.5, 2.0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps", "0"], "--steps must be >= 1, got 0"),
        (["--temperature", "0"], "--temperature must be > 0, got 0.0"),
        (["--length-scale", "-1"], "--length-scale must be > 0, got -1.0"),
        (["--temperature", "nan"], "--temperature must be > 0, got nan"),
    ],
)
def test_bad_values_are_rejected(argv, message, capsys):
    with pytest.raises(SystemExit):
        _parse(argv)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "main, required",
    [
        (inference.main, ["--checkpoint", "run", "--text", "Hi."]),
        (evaluate.main, ["--sentences", "s.txt"]),
        (run_tflite.main, ["--model-dir", "m", "--text", "Hi.", "--out", "o.wav"]),
    ],
)
def test_every_synthesis_script_checks_them_first(main, required, capsys):
    with pytest.raises(SystemExit):
        main([*required, "--steps", "0"])
    assert "--steps must be >= 1" in capsys.readouterr().err
