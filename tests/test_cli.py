"""The CLI surface: --help of every command, lazy imports, error mapping."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from nwb_lfads.cli.main import COMMANDS, main

from nwb_lfads import cli


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


def _listed(help_text: str) -> list[str]:
    """Command names in the ``Commands:`` section of the group's --help."""
    section = help_text.split("Commands:", 1)[1]
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ")]


def test_every_command_module_is_listed_in_help():
    modules = sorted(p.stem for p in Path(cli.__path__[0]).glob("cmd_*.py"))
    assert len(modules) >= 8
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = _listed(result.output)
    for module in modules:
        command = importlib.import_module(f"nwb_lfads.cli.{module}").command
        assert command.name in listed, f"{module}.py's command {command.name!r} not in --help"
        assert COMMANDS[command.name] == module
        assert main.get_command(None, command.name) is command
    assert sorted(listed) == sorted(COMMANDS)


def test_importing_cli_does_not_import_jax():
    code = (
        "import sys, nwb_lfads.cli.main as m; "
        "[m.main.get_command(None, n) for n in m.COMMANDS]; "
        "m.main(['--help'], standalone_mode=False); "
        "print('jax' in sys.modules, 'pynwb' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["False", "False"]


@pytest.fixture
def extra_command(tmp_path, monkeypatch):
    """Add a command module ``cli/cmd_extra.py`` with the given source (a file in tmp_path)."""
    monkeypatch.setattr(cli, "__path__", [*cli.__path__, str(tmp_path)])
    monkeypatch.setitem(COMMANDS, "extra", "cmd_extra")

    def add(source: str) -> None:
        (tmp_path / "cmd_extra.py").write_text(
            source + "\nimport click\n\n@click.command('extra')\ndef command():\n    pass\n"
        )
        importlib.invalidate_caches()

    yield add
    sys.modules.pop("nwb_lfads.cli.cmd_extra", None)


def test_a_command_whose_dependency_is_missing_says_how_to_install_it(extra_command, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ModuleNotFoundError
    extra_command("import ray")
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    assert "extra" in _listed(result.output) and "unavailable: needs ray" in result.output
    assert runner.invoke(main, ["extra", "--help"]).exit_code == 0
    result = runner.invoke(main, ["extra", "a.nwb", "--out", "x"])
    assert result.exit_code == 2
    assert "needs the Python package 'ray'" in result.output
    assert 'pip install "nwb-lfads[sweep]"' in result.output
    extra_command("import not_a_package_anyone_installed")
    sys.modules.pop("nwb_lfads.cli.cmd_extra", None)
    result = runner.invoke(main, ["extra"])
    assert result.exit_code == 2 and "pip install not_a_package_anyone_installed" in result.output


@pytest.mark.parametrize(
    "source, error",
    [
        ("from nwb_lfads.errors import NoSuchError", ImportError),
        ("import nwb_lfads.no_such_module", ModuleNotFoundError),
        ("1 / 0", ZeroDivisionError),
    ],
)
def test_a_broken_command_module_is_not_hidden(extra_command, source, error):
    extra_command(source)
    result = CliRunner().invoke(main, ["--help"])
    assert isinstance(result.exception, error), result.output
    result = CliRunner().invoke(main, ["extra"])
    assert isinstance(result.exception, error), result.output


def test_a_listed_command_without_its_module_is_not_hidden(monkeypatch):
    monkeypatch.setitem(COMMANDS, "ghost", "cmd_ghost")
    result = CliRunner().invoke(main, ["--help"])
    assert isinstance(result.exception, ModuleNotFoundError)


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and "nwb-lfads" in result.output
