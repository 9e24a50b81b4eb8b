"""Every exception and warning class of the package is defined in ``nwb_lfads.errors``."""

from __future__ import annotations

import importlib
import pkgutil

import nwb_lfads
from nwb_lfads import cli, errors

# the CLI's mapping of library errors onto click's exit codes, not a library error
CLI_CLASSES = {"nwb_lfads.cli.main.UserError"}


def _all_modules() -> list[str]:
    names = ["nwb_lfads", "nwb_lfads.cli"]
    for pkg in (nwb_lfads, cli):  # nwb_lfads.cli is installed from cli/
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
    return names


def _exception_classes(module) -> list[type]:
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseException)
        and obj.__module__ == module.__name__
    ]


def test_the_walk_sees_every_layer():
    names = _all_modules()
    for expected in (
        "nwb_lfads.metrics",
        "nwb_lfads.io.write",
        "nwb_lfads.model.lfads",
        "nwb_lfads.train.trainer",
        "nwb_lfads.sweep.cluster",
        "nwb_lfads.sweep.scheduler",
        "nwb_lfads.cli.main",
        "nwb_lfads.cli.cmd_sweep",
    ):
        assert expected in names


def test_every_exception_class_is_defined_in_errors():
    outside = []
    for name in _all_modules():
        module = importlib.import_module(name)  # no module is skipped: each must import
        if name == "nwb_lfads.errors":
            continue
        outside += [
            f"{c.__module__}.{c.__qualname__}"
            for c in _exception_classes(module)
            if f"{c.__module__}.{c.__qualname__}" not in CLI_CLASSES
        ]
    assert outside == [], f"move these classes to nwb_lfads/errors.py: {outside}"


def test_errors_subclass_the_base_of_their_exit_code():
    classes = _exception_classes(errors)
    assert len(classes) >= 20
    for cls in classes:
        assert issubclass(cls, (errors.NwbLfadsError, errors.NwbLfadsRuntimeError, UserWarning)), (
            f"{cls.__name__} must subclass NwbLfadsError (exit 2), NwbLfadsRuntimeError (exit 1) "
            "or UserWarning"
        )
        assert cls.__doc__, f"{cls.__name__} has no docstring"
    assert not issubclass(errors.NwbLfadsRuntimeError, errors.NwbLfadsError)
    assert issubclass(errors.RayMissingError, errors.NwbLfadsError)
    assert issubclass(errors.StitchingWarning, UserWarning)
