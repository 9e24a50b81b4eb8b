"""The click application: a group that finds one command per ``cmd_<name>.py`` module.

Library errors are mapped to click errors in one place (:meth:`LfadsGroup.invoke`): an
:class:`~nwb_lfads.errors.NwbLfadsError` becomes one line on stderr and exit code 2, a runtime
failure exit code 1, never a traceback for something the user can fix.
"""

from __future__ import annotations

import errno
import importlib
import os

import click

from nwb_lfads._version import __version__
from nwb_lfads.errors import NwbLfadsError, NwbLfadsRuntimeError

# command name -> module in this package defining ``command``; in the order --help lists them
COMMANDS = {
    "simulate": "cmd_simulate",
    "inspect": "cmd_inspect",
    "fit": "cmd_fit",
    "infer": "cmd_infer",
    "transfer": "cmd_transfer",
    "evaluate": "cmd_evaluate",
    "sweep": "cmd_sweep",
    "download": "cmd_download",
    "demo": "cmd_demo",
    "view": "cmd_view",
}


# third-party packages that a command may need but a plain install lacks -> how to install them
INSTALL_HINTS = {"ray": 'pip install "nwb-lfads[sweep]"'}


class UserError(click.ClickException):
    """A user-fixable error: printed as ``Error: <message>``, exit code 2."""

    exit_code = 2


class LfadsGroup(click.Group):
    """Loads command modules on demand and maps library errors to exit codes."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        return self._load(name)

    @staticmethod
    def _load(name):
        """The command ``name``, or None for a name that is not a command.

        A command module whose third-party dependency is not installed gives a stand-in that
        says so when run (:func:`_unavailable`); any other import failure, ours included,
        propagates with its traceback.
        """
        module = COMMANDS.get(name)
        if module is None:
            return None
        try:
            mod = importlib.import_module(f"{__package__}.{module}")
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").partition(".")[0]
            if missing in ("", "nwb_lfads"):  # our own code is broken: surface it
                raise
            return _unavailable(name, missing)
        return mod.command

    def invoke(self, ctx):
        from nwb_lfads.train.host_devices import split_host

        split_host()  # one XLA CPU device per core, before any command starts JAX (train.devices=0 uses them)
        try:
            return super().invoke(ctx)
        except NwbLfadsError as exc:
            raise UserError(str(exc)) from None
        except NwbLfadsRuntimeError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # a full disk, a folder we may not write to, a lost network
            if os.environ.get("NWB_LFADS_DEBUG") == "1":
                raise
            raise click.ClickException(os_error_line(exc)) from None


OS_ERROR_HINTS = {
    errno.ENOSPC: "free space there or choose another --out, then rerun (add --resume to continue "
    "a fit)",
    errno.EDQUOT: "free space in your quota or choose another --out, then rerun",
    errno.EACCES: "choose a folder you may write to, or fix its permissions",
    errno.EPERM: "choose a folder you may write to, or fix its permissions",
    errno.EROFS: "the file system is read-only; choose another --out",
    errno.ENOENT: "check the path",
}


def os_error_line(exc: OSError) -> str:
    """One line for an operating-system error: the path, what happened, what to do (exit 1).
    ``NWB_LFADS_DEBUG=1`` shows the traceback instead."""
    where = exc.filename or "nwb-lfads"
    what = exc.strerror or str(exc) or type(exc).__name__
    hint = OS_ERROR_HINTS.get(exc.errno, "set NWB_LFADS_DEBUG=1 to see where it happened")
    return f"{where}: {what}; {hint}."


def _unavailable(name: str, package: str) -> click.Command:
    """A stand-in for command ``name`` whose module needs ``package``, which is not installed.

    It is listed by ``--help`` and answers ``--help``; run, it exits with code 2 and one line
    naming the package and the install command, whatever arguments it was given.
    """
    hint = INSTALL_HINTS.get(package, f"pip install {package}")
    message = (
        f"`nwb-lfads {name}` needs the Python package '{package}', which is not installed; "
        f"install it with: {hint}"
    )

    def callback():
        raise UserError(message)

    return click.Command(
        name,
        callback=callback,
        help=message,
        short_help=f"(unavailable: needs {package}; {hint})",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


@click.group(cls=LfadsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nwb-lfads")
def main():
    """LFADS latent dynamics on NWB sessions.

    Read spikes from NWB files (local or on DANDI), fit one LFADS model over all sessions,
    and write inferred rates, factors and inputs back into copies of the files.

    \b
    Quick start:
      nwb-lfads simulate sim/ --sessions 3
      nwb-lfads fit 'sim/*.nwb' --align-to move_onset_time --out runs/sim
      nwb-lfads evaluate runs/sim
    """


if __name__ == "__main__":  # pragma: no cover
    main()
