"""Evaluation: FID, KID, IS, precision/recall, density/coverage, GAN-test and CAS on features
from a registered extractor (``FEATURES``); every metric is registered in ``METRICS``."""
from .evaluate import METRICS, evaluate, evaluate_images, parse_metrics
from .features import FEATURES, create_extractor
from .prdc import density_coverage, precision_recall
from .scores import fid, frechet_distance, inception_score, kid

__all__ = ["METRICS", "FEATURES", "evaluate", "evaluate_images", "parse_metrics", "create_extractor", "fid",
           "frechet_distance", "inception_score", "kid", "precision_recall", "density_coverage"]
