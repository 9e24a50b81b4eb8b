"""The CLI surface: --help of every command, lazy imports, error mapping."""

import subprocess
import sys

import pytest
from click.testing import CliRunner
from nwb_lfads.cli.main import COMMANDS, main


def test_top_level_help_lists_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "LFADS" in result.output
    for name in main.list_commands(None):
        assert name in result.output


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help(name):
    assert main.get_command(None, name) is not None, f"command {name} failed to load"
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_importing_cli_does_not_import_jax():
    code = (
        "import sys, nwb_lfads.cli.main as m; "
        "[m.main.get_command(None, n) for n in m.COMMANDS]; "
        "print('jax' in sys.modules, 'pynwb' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and "nwb-lfads" in result.output
