"""Checkpoints: ``.npz`` of flattened trees, YAML config and JSON session metadata. No pickle.

A checkpoint folder (:class:`~nwb_lfads.rundir.CheckpointDir`) holds

- the state (:attr:`~nwb_lfads.rundir.CheckpointDir.state`): ``params:<module>:<name>``
  arrays, ``average:<module>:<name>`` (the moving average of the parameters,
  ``train.ema_decay``), ``opt:<i>`` optimizer-state leaves in tree order, ``rng`` (raw key
  data, uint32), ``step``, ``host:<name>`` scalars of the loop (epoch, learning rate,
  counters), ``split:train`` (bool [M], to check a resume uses the same split) and
  ``config_yaml``;
- the best parameters (:attr:`~nwb_lfads.rundir.CheckpointDir.best`): those with the best
  smoothed validation loss;
- the full :class:`RunConfig` (YAML) and the sessions (JSON, per session: ``session_id``,
  ``source``, ``n_units``, ``unit_ids``, ``trial_ids``, ``heldout``).

Every file is written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np

from ..config import RunConfig
from ..errors import RunDirError
from ..rundir import CheckpointDir, RunDir


def flatten_params(params: dict) -> dict[str, np.ndarray]:
    """Haiku params {module: {name: array}} -> {"params:module:name": np.ndarray}."""
    return {
        f"params:{m}:{k}": np.asarray(v) for m, leaves in params.items() for k, v in leaves.items()
    }


def unflatten_params(arrays) -> dict:
    params: dict = {}
    for key in arrays:
        if key.startswith("params:"):
            _, module, name = key.split(":", 2)
            params.setdefault(module, {})[name] = np.asarray(arrays[key])
    return params


def _atomic_savez(path: Path, arrays: dict) -> None:
    """Write ``arrays`` to ``path`` through a temporary file and a rename: a failed write (a full
    disk) leaves the previous file as it was and no temporary file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_npz(path: Path) -> dict:
    """All arrays of a checkpoint file; RunDirError naming the file and the fix when it cannot
    be read (cut short by a crash, or not a checkpoint)."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise RunDirError(
            f"{path}: this checkpoint cannot be read ({type(exc).__name__}: {exc}). Delete it "
            f"and rerun with --resume to train again from the beginning with the run's saved "
            f"config, or start over with another --out."
        ) from None


def save_state(
    ck: CheckpointDir, state, host: dict, train_mask: np.ndarray, cfg: RunConfig, average=None
) -> None:
    """Write the state file (see the module docstring). ``state``: a TrainingState;
    ``average``: the parameters' moving average (params-shaped) or None."""
    arrays = flatten_params(jax.device_get(state.params))
    if average is not None:
        arrays.update(
            {
                "average:" + k.split(":", 1)[1]: v
                for k, v in flatten_params(jax.device_get(average)).items()
            }
        )
    for i, leaf in enumerate(jax.tree_util.tree_leaves(jax.device_get(state.opt_state))):
        arrays[f"opt:{i:05d}"] = np.asarray(leaf)
    arrays["rng"] = np.asarray(jax.random.key_data(state.rng))
    arrays["step"] = np.asarray(state.step, np.int64)
    for k, v in host.items():
        arrays[f"host:{k}"] = np.asarray(v, np.float64)
    arrays["split:train"] = np.asarray(train_mask, bool)
    arrays["config_yaml"] = np.asarray(cfg.to_yaml())
    _atomic_savez(ck.state, arrays)


def load_state(ck: CheckpointDir, template):
    """Read the state file into the structure of ``template`` (a TrainingState of the same
    model). Returns ``(state, host dict, train mask)``."""
    path = ck.state
    if not path.exists():
        raise RunDirError(f"{path}: no checkpoint to resume from; run without --resume.")
    arrays = _read_npz(path)
    params = unflatten_params(arrays)
    ref = jax.tree_util.tree_map(np.shape, jax.device_get(template.params))
    got = jax.tree_util.tree_map(np.shape, params)
    if ref != got:
        raise RunDirError(
            f"{path}: the checkpoint's parameters do not match the model of this config "
            f"and data; resume with the same config and sessions."
        )
    leaves, treedef = jax.tree_util.tree_flatten(template.opt_state)
    opt_keys = sorted(k for k in arrays if k.startswith("opt:"))
    if len(opt_keys) != len(leaves):
        raise RunDirError(
            f"{path}: the optimizer state has {len(opt_keys)} arrays where this version of "
            f"nwb-lfads expects {len(leaves)} (a run from an older version cannot be resumed); "
            f"start a new run with another --out; infer and evaluate still read this run."
        )
    opt_state = jax.tree_util.tree_unflatten(
        treedef,
        [np.asarray(arrays[k]).astype(np.asarray(l).dtype) for k, l in zip(opt_keys, leaves)],
    )
    rng = jax.random.wrap_key_data(arrays["rng"])
    state = type(template)(
        jax.tree_util.tree_map(jax.numpy.asarray, params),
        jax.tree_util.tree_map(jax.numpy.asarray, opt_state),
        rng,
        jax.numpy.asarray(arrays["step"], jax.numpy.int32),
    )
    host = {k.split(":", 1)[1]: float(arrays[k]) for k in arrays if k.startswith("host:")}
    return state, host, arrays["split:train"]


def load_average(ck: CheckpointDir) -> dict | None:
    """The parameters' moving average stored in the state file (numpy, params-shaped), or None
    when the checkpoint has none (written before ``train.ema_decay`` existed)."""
    arrays = _read_npz(ck.state)
    average = unflatten_params(
        {"params:" + k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith("average:")}
    )
    return average or None


def save_params(path: Path, params, **extra) -> None:
    """Write parameters (and scalar extras, e.g. ``epoch``) to one ``.npz``."""
    arrays = flatten_params(jax.device_get(params))
    arrays.update({f"host:{k}": np.asarray(v, np.float64) for k, v in extra.items()})
    _atomic_savez(Path(path), arrays)


def load_params(path: Path) -> dict:
    """Parameters (numpy, params-shaped) of a parameters or state file."""
    return unflatten_params(_read_npz(Path(path)))


def write_run_files(ck: CheckpointDir, cfg: RunConfig, sessions) -> None:
    """The config and the sessions (list of SessionInfo) in the checkpoint folder."""
    ck.write_run_files(cfg, [s.to_dict() for s in sessions])


def load_run(run_dir) -> tuple[RunConfig, dict, list]:
    """Load a trained run: ``(cfg, params, sessions)`` from its checkpoint.

    ``params`` are the best parameters (numpy); ``sessions`` a list of
    :class:`nwb_lfads.data.SessionInfo` in the model's session order.
    """
    from ..data import SessionInfo

    ck = RunDir(run_dir).check_trained()
    cfg = ck.read_config()
    params = load_params(ck.params_file())
    sessions = [SessionInfo.from_dict(d) for d in ck.read_sessions()]
    return cfg, params, sessions
