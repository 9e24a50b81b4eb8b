"""Ray: import it (an optional extra), join an existing cluster or start a local instance.

``nwb-lfads sweep`` runs on Ray Tune. Ray is imported only here and in the sweep's driver,
never by the rest of the package. :func:`ray_session` either

- joins an existing cluster (``address="auto"`` for the one started on this machine with
  ``ray start --head``, ``"HOST:PORT"`` for a head node's GCS, ``"ray://HOST:PORT"`` for a
  Ray Client server), after checking within ``connect_timeout_s`` seconds that the address
  answers, so an unreachable cluster fails fast and starts nothing; or
- starts a private local instance with ``workers`` CPUs (and the machine's GPUs) and shuts
  it down on exit.
"""

from __future__ import annotations

import contextlib
import os
import socket

from ..errors import ClusterError, RayMissingError

INSTALL_HINT = 'pip install "nwb-lfads[sweep]"'
CONNECT_TIMEOUT_S = 5.0
JOIN_RETRIES_S = (
    10  # seconds Ray keeps trying a head node that accepts TCP but does not answer as Ray
)
DEFAULT_GCS_PORT = 6379
DEFAULT_CLIENT_PORT = 10001


def import_ray():
    """``(ray, ray.tune)``; :class:`RayMissingError` with the install command when Ray is absent."""
    try:
        import ray
        from ray import tune
    except ImportError as exc:
        raise RayMissingError(
            f"nwb-lfads sweep needs Ray Tune, which is not installed ({exc}). Install it with: "
            f"{INSTALL_HINT}"
        ) from None
    return ray, tune


def parse_address(address: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a cluster address; None for ``auto``.

    ``ray://host[:port]`` (Ray Client, default port 10001) or ``host[:port]`` (the head's GCS,
    default port 6379).

    Raises:
        ClusterError: an empty or malformed address.
    """
    address = (address or "").strip()
    if address == "auto":
        return None
    scheme, rest = (
        ("ray", address[len("ray://") :]) if address.startswith("ray://") else ("gcs", address)
    )
    if "://" in rest or not rest:
        raise ClusterError(
            f"--address {address!r}: expected 'auto', HOST:PORT of a Ray head node or "
            f"ray://HOST:PORT of a Ray Client server."
        )
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    host = host.strip("[]")
    if not port:
        return scheme, host, DEFAULT_CLIENT_PORT if scheme == "ray" else DEFAULT_GCS_PORT
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 < number < 65536 or not host:
        raise ClusterError(
            f"--address {address!r}: bad host or port; expected HOST:PORT, e.g. 10.0.0.5:6379 "
            f"or ray://10.0.0.5:10001."
        )
    return scheme, host, number


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout_s`` seconds when nothing listens at ``address``.

    ``auto`` is checked by Ray itself (it reads the local cluster's address file, and fails
    at once when there is none).

    Raises:
        ClusterError: the host does not resolve or refuses or ignores the connection.
    """
    parsed = parse_address(address)
    if parsed is None:
        return
    _, host, port = parsed
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ClusterError(
            f"--address {address}: no Ray cluster answers at {host}:{port} ({reason}). Start one with "
            f"`ray start --head` on the head node (or check the address and firewall), or drop "
            f"--address to use a local Ray instance."
        ) from None


@contextlib.contextmanager
def ray_session(
    address: str | None,
    *,
    workers: int,
    gpus: float | None = None,
    env: dict | None = None,
    quiet: bool = True,
):
    """Connect to Ray for the duration of the block, then disconnect (and stop a local instance).

    Args:
        address: None (start a local instance), ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``.
        workers: CPUs of the local instance (ignored when joining a cluster).
        gpus: GPUs of the local instance (None: what Ray detects).
        env: environment variables for every worker process (``runtime_env``).
        quiet: do not forward the workers' output to this terminal.

    Raises:
        RayMissingError, ClusterError.
    """
    ray, _ = import_ray()
    if ray.is_initialized():
        raise ClusterError(
            "Ray is already initialised in this process; call ray.shutdown() first or run the "
            "sweep in a new process."
        )
    runtime_env = {"env_vars": {k: str(v) for k, v in (env or {}).items()}} if env else None
    kwargs = dict(
        runtime_env=runtime_env,
        log_to_driver=not quiet,
        logging_level="WARNING",
        configure_logging=True,
    )
    if address:
        check_reachable(address)
        try:
            with _env(RAY_gcs_server_port_wait_time_s=str(int(JOIN_RETRIES_S))):
                ray.init(address=address, **kwargs)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            _shutdown(ray)
            raise ClusterError(
                f"--address {address}: could not join the Ray cluster ({_first_line(exc)}). Start one "
                f"with `ray start --head`, check the address, or drop --address to use a local "
                f"Ray instance."
            ) from None
    else:
        ray.init(num_cpus=int(workers), num_gpus=gpus, include_dashboard=False, **kwargs)
    try:
        yield ray
    finally:
        _shutdown(ray)


@contextlib.contextmanager
def _env(**values):
    """Set environment variables the user has not set, for the duration of the block."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _shutdown(ray) -> None:
    with contextlib.suppress(Exception):
        ray.shutdown()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def local_cpus() -> int:
    """CPUs this process may use (the affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
