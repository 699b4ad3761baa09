"""An Optuna sampler wrapper that does not propose a parameter set a trial of the study already has
(finished, running or failed): a known set proposed by the wrapped sampler is changed at random
(seeded) into one the study does not have. A search space whose every set has been tried gets a
repeat (and a warning): there is nothing new left."""

from __future__ import annotations

import logging
import random
from typing import Any

from optuna.samplers import BaseSampler

log = logging.getLogger(__name__)
DRAWS = 200


class NoRepeatSampler(BaseSampler):
    """Wraps `base`: samples the whole search space `space` at once (base's relative sampling where it
    has one, its independent sampling for the rest), and if that set is known, draws the last
    parameters again at random, keeping as many of the first ones as possible."""

    def __init__(self, base: BaseSampler, space: dict, seed: int | None = None) -> None:
        self.base, self.space = base, dict(space)
        self._rng = random.Random(seed)

    def __getattr__(self, name: str) -> Any:  # TPESampler's options etc.
        if name in ("base", "space"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def infer_relative_search_space(self, study, trial):
        return dict(self.space)

    def sample_relative(self, study, trial, search_space):
        if not self.space:
            return {}
        base_space = self.base.infer_relative_search_space(study, trial)
        params = dict(self.base.sample_relative(study, trial, base_space)) if base_space else {}
        for name, dist in self.space.items():
            if name not in params:
                params[name] = self.base.sample_independent(study, trial, name, dist)
        params = {name: params[name] for name in self.space}
        if not self._known(study, trial, params):
            return params
        names = list(self.space)
        for keep in range(len(names) - 1, -1, -1):
            for _ in range(DRAWS):
                candidate = {**{n: params[n] for n in names[:keep]}, **{n: self._draw(self.space[n]) for n in names[keep:]}}
                if not self._known(study, trial, candidate):
                    return candidate
        log.warning("every parameter set of the search space has been tried: repeating one")
        return params

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def _draw(self, dist) -> Any:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if isinstance(dist, CategoricalDistribution):
            return self._rng.choice(dist.choices)
        if isinstance(dist, IntDistribution):
            if dist.log:
                import math

                return int(round(math.exp(self._rng.uniform(math.log(dist.low), math.log(dist.high)))))
            return self._rng.randrange(dist.low, dist.high + 1, dist.step)
        if isinstance(dist, FloatDistribution):
            if dist.step is not None:
                n = int(round((dist.high - dist.low) / dist.step))
                return dist.low + self._rng.randint(0, n) * dist.step
            if dist.log:
                import math

                return math.exp(self._rng.uniform(math.log(dist.low), math.log(dist.high)))
            return self._rng.uniform(dist.low, dist.high)
        return None

    def _known(self, study, trial, params: dict) -> bool:
        """Whether `params` complete the parameter set of another trial of the study."""
        return any(other.number != trial.number and other.params == params
                   for other in study.get_trials(deepcopy=False))

    def before_trial(self, study, trial):
        self.base.before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()
