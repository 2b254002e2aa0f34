"""Reference cover-song identification model, training loop and retrieval evaluation.

- :class:`CSINet` / :class:`CSIConfig`: a compact CQTNet-style network (about 0.43M
  parameters) with an L2-normalised embedding and a cosine classification head.
- :func:`train_csi` / :class:`CSITrainConfig`: seeded, CPU-friendly training on
  ``(x, y)`` or ``(x, y, is_synthetic)`` items, with optional batch augmentation.
- :func:`retrieval_metrics`, :func:`evaluate_retrieval`: MAP, P@10 and MR1 (query excluded
  from its own list, deterministic ties, distances in blocks of queries);
  :func:`gallery_metrics_from_embeddings`: queries against a separate gallery;
  :func:`classification_accuracy`.
- :func:`embedding_features`: the trained embedding as the ``"embedding"`` feature space
  of :mod:`covergan.metrics`.

Examples
--------
>>> from covergan.csi import CSINet, train_csi, evaluate_retrieval
>>> train, test = split_by_song(dataset, 0.2, seed=0)
>>> model = CSINet(n_classes=train.n_songs, n_bins=train.n_bins)
>>> history = train_csi(model, train.windows(200), steps=400, seed=0)
>>> print(evaluate_retrieval(model, test))        # full tracks, cosine distance
MAP=... P@10=... MR1=... (... queries, ... skipped)
"""

from __future__ import annotations

from covergan.csi.model import CSIConfig, CSINet, EmbeddingFeatures, embedding_features
from covergan.csi.retrieval import (
    RetrievalResult,
    classification_accuracy,
    embed_dataset,
    evaluate_retrieval,
    gallery_metrics,
    gallery_metrics_from_embeddings,
    pairwise_distances,
    retrieval_metrics,
    retrieval_metrics_from_distances,
)
from covergan.csi.train import CSITrainConfig, CSITrainHistory, train_csi

__all__ = [
    "CSIConfig",
    "CSINet",
    "CSITrainConfig",
    "CSITrainHistory",
    "EmbeddingFeatures",
    "RetrievalResult",
    "classification_accuracy",
    "embed_dataset",
    "embedding_features",
    "evaluate_retrieval",
    "gallery_metrics",
    "gallery_metrics_from_embeddings",
    "pairwise_distances",
    "retrieval_metrics",
    "retrieval_metrics_from_distances",
    "train_csi",
]
