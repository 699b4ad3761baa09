"""dlcourse's Optuna sweeper as a Hydra plugin: Hydra instantiates sweepers only from the
`hydra_plugins` namespace package. The implementation is dlcourse.sweeps.optuna_search."""

from dlcourse.sweeps.optuna_search import OptunaSearch


class OptunaSweeper(OptunaSearch):
    """`hydra/sweeper=optuna` (conf/hydra/sweeper/optuna.yaml): Optuna ask/tell, pruning, continued studies."""
