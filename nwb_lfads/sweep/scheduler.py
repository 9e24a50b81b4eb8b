"""Ray Tune's population-based training, set up as AutoLFADS's generations.

Imported only by the sweep's driver (it imports Ray). :class:`GenerationalPBT` is Ray's
``PopulationBasedTraining`` with ``time_attr="epoch"`` (the member's own epoch counter, which
a copy inherits from its donor), the objective minimised, perturbed values clipped to the
search ranges, and two fixes for ``Tuner.restore``: Ray's synchronous mode then counts
generations from the first again, so the next generation can be set to one that every member
has reached, and then no paused member is "behind" and all stay paused for ever. Here the
next generation is one interval after the one that just ended, and when every live member is
paused with none behind, the least advanced one is started.
"""

from __future__ import annotations

from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining

from .member import OBJECTIVE
from .space import SearchSpace


def _domain(low: float, high: float, scale: str):
    return tune.loguniform(low, high) if scale == "log" else tune.uniform(low, high)


def initial_draws(space: SearchSpace) -> dict:
    """Ray ``param_space``: the first generation draws each hyperparameter from its ``init`` range."""
    out = {}
    for h in space.hyperparameters:
        lo, hi = h.init_range
        out[h.name] = lo if lo == hi else _domain(lo, hi, h.scale)
    return out


class GenerationalPBT(PopulationBasedTraining):
    """See the module docstring; build it with :meth:`for_space`."""

    @classmethod
    def for_space(cls, space: SearchSpace) -> GenerationalPBT:
        p = space.pbt
        return cls(
            time_attr="epoch",
            metric=OBJECTIVE,
            mode="min",
            perturbation_interval=p.perturbation_interval,
            burn_in_period=p.burn_in,
            hyperparam_mutations={
                h.name: _domain(h.low, h.high, h.scale) for h in space.hyperparameters
            },
            quantile_fraction=p.quantile_fraction,
            resample_probability=p.resample_probability,
            perturbation_factors=tuple(p.perturbation_factors),
            custom_explore_fn=space.clip,
            synch=p.synch,
        )

    def on_trial_result(self, tune_controller, trial, result):
        before = self._next_perturbation_sync
        decision = super().on_trial_result(tune_controller, trial, result)
        if self._synch and self._next_perturbation_sync != before and self._time_attr in result:
            # a generation just ended at this result's time: the next one is an interval later
            self._next_perturbation_sync = result[self._time_attr] + self._perturbation_interval
        return decision

    def choose_trial_to_run(self, tune_controller):
        chosen = super().choose_trial_to_run(tune_controller)
        if chosen is not None or not self._synch:
            return chosen
        trials = tune_controller.get_trials()
        waiting = [
            t
            for t in trials
            if t.status in (Trial.PENDING, Trial.PAUSED) and t in self._trial_state
        ]
        if not waiting or any(t.status == Trial.RUNNING for t in trials):
            return None
        # every live member is paused and none is behind: start the next generation
        first = min(waiting, key=lambda t: self._trial_state[t].last_train_time)
        self._next_perturbation_sync = (
            self._trial_state[first].last_train_time + self._perturbation_interval
        )
        return first
