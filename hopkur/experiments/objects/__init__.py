"""Unsupervised object discovery with AKOrN (issue 22): networks, training, and
evaluation as AKOrN evaluates, on the generated images of
[`hopkur.data.multi_object`][].

Evaluation: the final oscillator features of each image are clustered per image
([`hopkur.experiments.objects.cluster_features`][]) and the segments are scored against
the true instance masks by FG-ARI ([`hopkur.experiments.objects.fg_ari`][]) and MBO
([`hopkur.experiments.objects.mbo`][]). Two trivial references, k-means over the true
foreground's colours alone and over its positions alone, show what binding adds. These
use scikit-learn, imported when first called.
"""

from ._metrics import (
    cluster_features as cluster_features,
    colour_reference as colour_reference,
    fg_ari as fg_ari,
    mbo as mbo,
    position_reference as position_reference,
)
