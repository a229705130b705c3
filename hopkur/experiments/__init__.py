"""The research note's experiments (classification with ODE networks, memory editing)
and AKOrN Sudoku. These train with optax; the core of hopkur never imports them."""

from .cache import (
    default_cache_dir as default_cache_dir,
    pretrained_hopfield_classifier as pretrained_hopfield_classifier,
)
from .classifiers import (
    AbstractClassifier as AbstractClassifier,
    classification_loss as classification_loss,
    HopfieldClassifier as HopfieldClassifier,
    HopfieldKuramotoClassifier as HopfieldKuramotoClassifier,
    KuramotoClassifier as KuramotoClassifier,
    oscillator_centre as oscillator_centre,
)
from .correction import (
    ContextEncoder as ContextEncoder,
    ImageContext as ImageContext,
    OscillatorCorrection as OscillatorCorrection,
)
from .editing import (
    associative_pairs as associative_pairs,
    edit_labels as edit_labels,
    EditedClassifier as EditedClassifier,
    evaluate_edit as evaluate_edit,
    make_edited_classifier as make_edited_classifier,
)
from .runs import (
    addition_pairs as addition_pairs,
    ClassifyConfig as ClassifyConfig,
    EditConfig as EditConfig,
    load_dataset as load_dataset,
    run_classify as run_classify,
    run_edit as run_edit,
)
from .training import (
    accuracy as accuracy,
    confusion_matrix as confusion_matrix,
    make_optimiser as make_optimiser,
    predict as predict,
    train as train,
    TrainResult as TrainResult,
)
