"""hopkur: energy-based neural dynamics in JAX.

Continuous Hopfield networks, generalised Kuramoto oscillators on spheres (the
oscillatory neurons of AKOrN) and the coupled Hopfield–Kuramoto associative memory, each
with its Lyapunov (energy) function.
"""

import importlib
import importlib.metadata
import warnings

from ._coupled import (
    coupled_energy as coupled_energy,
    coupled_vector_field as coupled_vector_field,
    HopfieldKuramoto as HopfieldKuramoto,
)
from ._discrete import (
    akorn_step as akorn_step,
    akorn_steps as akorn_steps,
    DiscreteTrajectory as DiscreteTrajectory,
)
from ._feature_couplings import (
    AbstractFeatureCoupling as AbstractFeatureCoupling,
    AttentionCoupling as AttentionCoupling,
    ConvCoupling as ConvCoupling,
    GroupedCoupling as GroupedCoupling,
    multi_head_attention as multi_head_attention,
)
from ._fixed_points import (
    find_fixed_points as find_fixed_points,
    fixed_point_spectrum as fixed_point_spectrum,
    FixedPoints as FixedPoints,
    Stability as Stability,
)
from ._graphs import (
    complete_edges as complete_edges,
    ring_edges as ring_edges,
    small_world_edges as small_world_edges,
)
from ._hk_couplings import (
    AbstractHopfieldKuramotoCoupling as AbstractHopfieldKuramotoCoupling,
    AdditiveCoupling as AdditiveCoupling,
    MultiplicativeCoupling as MultiplicativeCoupling,
    NetworkCoupling as NetworkCoupling,
)
from ._hopfield import (
    AbstractHopfield as AbstractHopfield,
    activation as activation,
    HebbianHopfield as HebbianHopfield,
    Hopfield as Hopfield,
    hopfield_energy as hopfield_energy,
    hopfield_vector_field as hopfield_vector_field,
)
from ._integrate import (
    implicit_linear_solver as implicit_linear_solver,
    model_retraction as model_retraction,
    relax as relax,
    RetractingSolver as RetractingSolver,
    simulate as simulate,
    simulate_batch as simulate_batch,
)
from ._interactions import (
    AbstractInteraction as AbstractInteraction,
    FunctionInteraction as FunctionInteraction,
    LinearInteraction as LinearInteraction,
    MLPInteraction as MLPInteraction,
    ReluInteraction as ReluInteraction,
    SigmoidInteraction as SigmoidInteraction,
    TanhInteraction as TanhInteraction,
)
from ._kuramoto import (
    AbstractOscillatorCoupling as AbstractOscillatorCoupling,
    BlockCoupling as BlockCoupling,
    DenseCoupling as DenseCoupling,
    EdgeCoupling as EdgeCoupling,
    Kuramoto as Kuramoto,
    kuramoto_energy as kuramoto_energy,
    kuramoto_vector_field as kuramoto_vector_field,
    lag_rotation as lag_rotation,
    MeanFieldCoupling as MeanFieldCoupling,
    with_phase_lag as with_phase_lag,
)
from ._lagrangians import (
    lagrangian_identity as lagrangian_identity,
    lagrangian_relu as lagrangian_relu,
    lagrangian_sigmoid as lagrangian_sigmoid,
    lagrangian_softmax as lagrangian_softmax,
    lagrangian_tanh as lagrangian_tanh,
)
from ._layered import (
    layered_hopfield_energy as layered_hopfield_energy,
    layered_hopfield_vector_field as layered_hopfield_vector_field,
    LayeredHopfield as LayeredHopfield,
)
from ._lyapunov import (
    energy_along as energy_along,
    lyapunov_report as lyapunov_report,
    LyapunovReport as LyapunovReport,
)
from ._memory import (
    capacity_sweep as capacity_sweep,
    CapacitySweep as CapacitySweep,
    sign_retrieve as sign_retrieve,
)
from ._native import (
    native_kernels as native_kernels,
    NativeKernels as NativeKernels,
)
from ._patterns import (
    corrupt_patterns as corrupt_patterns,
    hebbian_weights as hebbian_weights,
    pattern_overlaps as pattern_overlaps,
)
from ._sphere import (
    normalise as normalise,
    project_tangent as project_tangent,
    random_sphere as random_sphere,
)
from ._synchrony import (
    bimodal_frequencies as bimodal_frequencies,
    gaussian_frequencies as gaussian_frequencies,
    kuramoto_order_theory as kuramoto_order_theory,
    lorentzian_frequencies as lorentzian_frequencies,
    order_parameter as order_parameter,
    planar_rotations as planar_rotations,
    uniform_frequencies as uniform_frequencies,
)
from ._system import AbstractEnergySystem as AbstractEnergySystem


__version__ = importlib.metadata.version("hopkur")


# Deprecated names, resolved on first access (PEP 562) so that the core never imports
# the applications layer (`hopkur.experiments`) when `hopkur` is imported.
_DEPRECATED = {
    "LowRankOscillatorCorrection": (
        "hopkur.experiments.OscillatorCorrection",
        "it is low-rank in one configuration of four (MODELS.md §3)",
    ),
    "ContextEncoder": (
        "hopkur.experiments.ContextEncoder",
        "the memory-editing model moved to the applications layer",
    ),
}


def __getattr__(name: str):
    if name in _DEPRECATED:
        new, why = _DEPRECATED[name]
        warnings.warn(
            f"`hopkur.{name}` is deprecated; use `{new}` ({why}).",
            DeprecationWarning,
            stacklevel=2,
        )
        module, _, attr = new.rpartition(".")
        return getattr(importlib.import_module(module), attr)
    if name in ("data", "theory"):
        # `import hopkur` used to load `hopkur.data` as a side effect; keep
        # `hopkur.data` usable after a bare `import hopkur`. `hopkur.theory` (SciPy)
        # loads on first access too, so that `import hopkur` does not import SciPy.
        return importlib.import_module(f"hopkur.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
