"""Unsupervised object discovery with AKOrN (issue 22): networks, training, and
evaluation as AKOrN evaluates, on the generated images of
`hopkur.data.multi_object`.

Networks: [`hopkur.experiments.objects.ObjectAKOrN`][] (oscillators with a conv or an
attention coupling over patches) and its non-oscillator baseline
[`hopkur.experiments.objects.ObjectItrNet`][] (AKOrN's ItrConv / ItrSA), trained with a
contrastive objective ([`hopkur.experiments.objects.train_objects`][]).

Evaluation: the final oscillator features of each image are clustered per image
([`hopkur.experiments.objects.cluster_features`][], through
[`hopkur.experiments.objects.segment`][]) and the segments are scored against the true
instance masks by FG-ARI ([`hopkur.experiments.objects.fg_ari`][]) and MBO
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
from ._networks import (
    AbstractObjectNetwork as AbstractObjectNetwork,
    ObjectAKOrN as ObjectAKOrN,
    ObjectFeatures as ObjectFeatures,
    ObjectItrNet as ObjectItrNet,
)
from ._segment import (
    network_features as network_features,
    pca_colours as pca_colours,
    segment as segment,
)
from ._training import (
    augment as augment,
    build_model as build_model,
    contrastive_loss as contrastive_loss,
    evaluate as evaluate,
    evaluate_references as evaluate_references,
    load_model as load_model,
    train_objects as train_objects,
)
