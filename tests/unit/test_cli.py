"""The CLI: bad input exits 2 with one line, never a stack trace."""

import subprocess
import sys
from pathlib import Path

import pytest

FLIGHTBASE = str(Path(sys.executable).parent / "flightbase")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["up", "--gpus", "lots"], "--gpus"),
        (["up", "--port", "99999", "--gpus", "1"], "--port"),
        (["nonsense"], "invalid choice"),
        (["workspaces", "create"], "required"),
        (["trainings", "show"], "id: name the training"),
        (["trainings", "list", "abc"], "id: 'flightbase trainings' lists"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, argv, words):
    if argv[0] == "up":
        argv = [*argv, "--data-dir", str(tmp_path / "d")]
    proc = subprocess.run([FLIGHTBASE, *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("usage:") and not line.startswith(" ")]
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_client_commands_without_token_exit_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([FLIGHTBASE, "workspaces", "list"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "FLIGHTBASE_TOKEN" in proc.stderr


def test_unreachable_platform_exits_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FLIGHTBASE_TOKEN": "x", "FLIGHTBASE_URL": "http://127.0.0.1:9"}
    proc = subprocess.run([FLIGHTBASE, "info"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "cannot reach" in proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["workspaces", "--help"]])
def test_a_reader_that_goes_away_ends_the_command_quietly(argv):
    """``flightbase ... | head``: the pipe is closed before the command writes. It stops as a
    command killed by SIGPIPE does (exit 141), without a traceback."""
    proc = subprocess.Popen([FLIGHTBASE, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the interpreter has even started
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141, err.decode()
    assert b"Traceback" not in err and b"BrokenPipeError" not in err


@pytest.mark.parametrize(
    ("argv", "code", "args"),
    [
        # the README's order: options after the code (argparse alone called "--epochs 3" unrecognized)
        (["submit", "train.py", "-w", "vision", "--gpus", "2", "--", "--epochs", "3"], "train.py", ["--epochs", "3"]),
        (["submit", "-w", "vision", "train.py", "--", "--epochs", "3"], "train.py", ["--epochs", "3"]),
        (["submit", "train.py", "a", "-w", "vision", "--", "b", "-w", "other"], "train.py", ["a", "b", "-w", "other"]),
        (["submit", "-w", "vision", "--", "train.py", "x"], "train.py", ["x"]),
        (["submit", "train.py", "-w", "vision"], "train.py", []),
    ],
)
def test_submit_passes_on_what_follows_the_double_dash_wherever_the_options_stand(argv, code, args):
    from flightbase import cli

    parsed, extra = cli._parse(cli.build_parser(), argv)
    assert extra == []
    assert (parsed.code, parsed.args, parsed.workspace) == (code, args, "vision")


def test_every_submit_example_in_the_readme_parses():
    """The README's own commands, as a person pastes them."""
    import shlex

    from flightbase import cli

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    examples = [line.split("#")[0].strip() for line in readme.splitlines() if line.strip().startswith("flightbase submit")]
    assert len(examples) >= 2
    for line in examples:
        parsed, extra = cli._parse(cli.build_parser(), shlex.split(line)[1:])
        assert extra == [], line
        assert parsed.code and parsed.func, line


def test_a_stray_argument_after_the_options_of_a_command_without_pass_through_is_still_refused():
    proc = subprocess.run([FLIGHTBASE, "info", "--", "extra"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "FLIGHTBASE_TOKEN": "x", "FLIGHTBASE_URL": "http://127.0.0.1:9"})
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["workspaces"], ["models"], ["models", "--json"], ["datasets", "-w", "vision"],
                                  ["images", "--json"]])
def test_a_command_of_actions_given_none_lists(argv):
    from flightbase import cli

    parsed, extra = cli._parse(cli.build_parser(), argv)
    assert (parsed.command, parsed.action, extra) == (argv[0], "list", [])


def test_a_command_of_actions_still_shows_its_own_help():
    proc = subprocess.run([FLIGHTBASE, "datasets", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "{list,create,upload" in proc.stdout, proc.stdout
