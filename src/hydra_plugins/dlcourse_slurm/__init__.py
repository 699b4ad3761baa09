"""dlcourse's SLURM launcher as a Hydra plugin: Hydra instantiates launchers only from the `hydra_plugins`
namespace package, where an installed dlcourse puts this one. The implementation is dlcourse.sweeps.slurm."""

from dlcourse.sweeps.slurm import SlurmLauncher as _SlurmLauncher


class SlurmLauncher(_SlurmLauncher):
    """`hydra/launcher=slurm_cpu|slurm_gpu|slurm` (conf/hydra/launcher/): a sweep's jobs as a SLURM array."""
