"""Fusion of frozen encoder features: early, late and hybrid modules behind one interface, and their trainer.

Which fusion fits a dataset depends on how strongly its modalities interact; ``train_fusion`` with several
fusions answers that for the user's own data (``polymodal train --compare early,late,hybrid``).
"""

from polymodal.fusion.checkpoint import FusionCheckpoint, load_checkpoint, save_checkpoint
from polymodal.fusion.features import FeatureSet
from polymodal.fusion.metrics import Metrics, classification_metrics
from polymodal.fusion.modules import FusionConfig, FusionModel, FusionOutput
from polymodal.fusion.pipeline import (
    FusionOptions,
    PredictReport,
    TrainOptions,
    TrainReport,
    predict_fusion,
    train_fusion,
)
from polymodal.fusion.registry import FusionKind, build_fusion, fusions, register_fusion
from polymodal.fusion.trainer import TrainConfig, evaluate, fit, predict_proba

__all__ = [
    "FeatureSet",
    "FusionCheckpoint",
    "FusionConfig",
    "FusionKind",
    "FusionModel",
    "FusionOptions",
    "FusionOutput",
    "Metrics",
    "PredictReport",
    "TrainConfig",
    "TrainOptions",
    "TrainReport",
    "build_fusion",
    "classification_metrics",
    "evaluate",
    "fit",
    "fusions",
    "load_checkpoint",
    "predict_fusion",
    "predict_proba",
    "register_fusion",
    "save_checkpoint",
    "train_fusion",
]
