"""The main job: train on normal images, evaluate on labelled test images, predict on new images."""

from nsad.pipeline.evaluate import evaluate_run
from nsad.pipeline.predict import predict
from nsad.pipeline.scoring import Scorer
from nsad.pipeline.train import SEGMENTATION_METHODS, TrainConfig, train
from nsad.postprocess import image_scores

__all__ = ["SEGMENTATION_METHODS", "Scorer", "TrainConfig", "evaluate_run", "image_scores", "predict", "train"]
