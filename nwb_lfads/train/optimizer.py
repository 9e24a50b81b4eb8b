"""The optimizer: one optax chain, built in one function.

Shape glossary: P the number of parameters (the optimizer works on one flat float32 vector of
all of them, ``jax.flatten_util.ravel_pytree``: a handful of large element-wise kernels instead
of a few per parameter array, which halves XLA's compile time on CPU).

The chain, from the gradient to the update added to the parameters::

    inject_hyperparams(learning_rate)           the rate lives in the optimizer state
      apply_if_finite(                          a non-finite gradient skips the whole step
        clip_by_global_norm(max_grad_norm)
        scale_by_adam(eps=adam_epsilon)
        add_decayed_weights(weight_decay)       only with weight_decay > 0 (AdamW)
        stateless(updates * trainable)          only when parts are frozen (train_readin false)
        scale_by_learning_rate(learning_rate))  -learning_rate * update

The learning rate is read and set on the host between compiled calls
(:func:`learning_rate`, :func:`with_learning_rate`), so decaying it never recompiles; the
decision to decay is the trainer's (a plateau of the smoothed validation loss, once per
epoch), which is why ``optax.contrib.reduce_on_plateau`` (a per-step test of the training
loss inside the update) is not used. The parameters' moving average is
:func:`parameter_average` (``optax.incremental_update``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from ..config import TrainConfig

# apply_if_finite gives up after this many non-finite steps in a row and applies the update;
# the trainer restores the last good state long before (``train.nan_patience`` calls).
_NEVER_GIVE_UP = 2**30


def make_optimizer(
    train: TrainConfig, trainable: jax.Array | None = None
) -> optax.GradientTransformation:
    """The optimizer of the flat parameter vector (see the module docstring).

    Args:
        train: ``max_grad_norm``, ``adam_epsilon``, ``weight_decay`` and ``lr_init`` are read.
        trainable: float32 [P], 1 where a parameter trains and 0 where it is frozen; None when
            everything trains.

    Returns:
        An ``optax.GradientTransformation`` whose updates are added to the parameters
        (``optax.apply_updates``); its state is an ``InjectHyperparamsState``.
    """

    def chain(learning_rate):
        parts = [
            optax.clip_by_global_norm(train.max_grad_norm),
            optax.scale_by_adam(eps=train.adam_epsilon),
        ]
        if train.weight_decay > 0:
            parts.append(optax.add_decayed_weights(train.weight_decay))
        if trainable is not None:
            parts.append(optax.stateless(lambda updates, params: updates * trainable))
        parts.append(optax.scale_by_learning_rate(learning_rate))
        return optax.apply_if_finite(optax.chain(*parts), max_consecutive_errors=_NEVER_GIVE_UP)

    return optax.inject_hyperparams(chain)(learning_rate=train.lr_init)


def learning_rate(opt_state) -> float:
    """The learning rate held in the optimizer state of :func:`make_optimizer`."""
    return float(opt_state.hyperparams["learning_rate"])


def with_learning_rate(opt_state, lr: float):
    """``opt_state`` with the learning rate set to ``lr`` (float32 scalar)."""
    hyper = dict(opt_state.hyperparams)
    hyper["learning_rate"] = jnp.asarray(lr, jnp.float32)
    return opt_state._replace(hyperparams=hyper)


def step_was_finite(opt_state) -> jax.Array:
    """bool scalar: whether the last update's gradient was finite (and so was applied)."""
    return opt_state.inner_state.last_finite


@jax.jit
def parameter_average(average, params, decay):
    """``decay * average + (1 - decay) * params``, leaf by leaf (Polyak averaging;
    ``decay`` a float32 scalar in [0, 1)); the shardings of the inputs are kept."""
    return optax.incremental_update(params, average, 1.0 - decay)
