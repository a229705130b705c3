"""AKOrN object discovery (AKOrN's binding experiment, MODELS.md §7): networks with
oscillators and their non-oscillator baselines, contrastive training, segmentation by
clustering the final states, and FG-ARI / MBO evaluation beside trivial references."""

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
