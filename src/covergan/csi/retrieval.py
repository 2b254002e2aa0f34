"""Cover-song retrieval evaluation: MAP, P@10 and MR1, and dataset-level helpers.

Protocol (the field's, see ``shared/docs/field-reference.md`` section 2): every item is a
query against all the other items of the same collection; an item is relevant to a query
when it has the same label (song / work / clique). For each query:

- the query itself is removed from its ranked list;
- the other items are sorted by increasing distance. Ties are broken deterministically:
  ``ties="pessimistic"`` (default) puts irrelevant items before relevant ones at equal
  distance, then orders by item index, so a degenerate model (e.g. a constant embedding,
  where every distance ties) can never score above chance by the luck of the item order;
  ``ties="index"`` orders tied items by index only (a stable sort by ``(distance, index)``,
  what CQTNet's ``calc_MAP`` does);
- AP = mean over the ``m`` relevant items of ``k / r_k``, with ``r_k`` the 1-based rank of
  the ``k``-th relevant item;
- P@10 = (number of relevant items in the first 10) / 10, dividing by 10 even when fewer
  than 10 items are relevant or the list is shorter than 10 (the MIREX and CQTNet
  convention, so a query with 2 covers scores at most 0.2);
- R1 = ``r_1``, the rank of the first relevant item.

MAP, P@10 and MR1 are the means over the queries that have at least one relevant item;
queries without one (songs with a single recording, which still act as distractors) are
skipped and counted in :attr:`RetrievalResult.n_skipped`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset

from covergan._checks import check_count
from covergan.csi.model import CSINet
from covergan.data import CQTDataset, SongIndex
from covergan.errors import DatasetError, ParameterError

__all__ = [
    "RetrievalResult",
    "classification_accuracy",
    "embed_dataset",
    "evaluate_retrieval",
    "gallery_metrics",
    "gallery_metrics_from_embeddings",
    "pairwise_distances",
    "retrieval_metrics",
    "retrieval_metrics_from_distances",
]

logger = logging.getLogger(__name__)

Ties = Literal["pessimistic", "index"]
Metric = Literal["cosine", "euclidean"]
Labels: TypeAlias = "Sequence[Hashable] | npt.NDArray[Any] | torch.Tensor"
FloatArray: TypeAlias = npt.NDArray[np.float64]

_TOP_K = 10
#: Queries per block of distances in :func:`retrieval_metrics` and
#: :func:`gallery_metrics_from_embeddings` (256 x 100,000 distances: 205 MB).
BLOCK_SIZE = 256


@dataclass(frozen=True)
class RetrievalResult:
    """Retrieval scores of a collection.

    Attributes
    ----------
    map : float
        Mean average precision over evaluated queries (higher is better, at most 1).
    p_at_10 : float
        Mean precision in the top 10 (at most ``min(10, m) / 10`` for a query with ``m``
        relevant items).
    mr1 : float
        Mean rank of the first relevant item (lower is better, at least 1).
    n_queries : int
        Queries evaluated (those with at least one relevant item).
    n_skipped : int
        Queries skipped because no other item shares their label.
    average_precision, precision_at_10, rank1 : np.ndarray [shape=(N,)]
        Per-query values in item order; NaN for skipped queries.
    """

    map: float
    p_at_10: float
    mr1: float
    n_queries: int
    n_skipped: int
    average_precision: FloatArray
    precision_at_10: FloatArray
    rank1: FloatArray

    def as_dict(self) -> dict[str, float | int]:
        """The summary numbers: ``map``, ``p_at_10``, ``mr1``, ``n_queries``, ``n_skipped``."""
        return {
            "map": self.map,
            "p_at_10": self.p_at_10,
            "mr1": self.mr1,
            "n_queries": self.n_queries,
            "n_skipped": self.n_skipped,
        }

    def __str__(self) -> str:
        return (
            f"MAP={self.map:.4f} P@10={self.p_at_10:.4f} MR1={self.mr1:.2f} "
            f"({self.n_queries} queries, {self.n_skipped} skipped)"
        )


def pairwise_distances(
    embeddings: npt.ArrayLike | torch.Tensor, *, metric: Metric = "cosine"
) -> FloatArray:
    """Distances between every pair of embeddings, in float64.

    Parameters
    ----------
    embeddings : array or torch.Tensor [shape=(N, D)]
    metric : {"cosine", "euclidean"}
        ``"cosine"``: ``1 - cos(a, b)`` (in ``[0, 2]``; a zero vector is at distance 1
        from everything); ``"euclidean"``: ``||a - b||``.

    Returns
    -------
    np.ndarray [shape=(N, N), dtype=float64]
        Symmetric, zero diagonal. ``N * N * 8`` bytes: for large collections score with
        :func:`retrieval_metrics`, which never holds the whole matrix.

    Raises
    ------
    ParameterError
        Not 2-D, NaN/inf values, or an unknown metric.
    """
    x = _embeddings(embeddings, "embeddings")
    d = next(_distance_blocks(x, x, metric, max(x.shape[0], 1)))[1]
    dist: FloatArray = np.maximum((d + d.T) / 2.0, 0.0)  # exact symmetry for ties
    np.fill_diagonal(dist, 0.0)
    return dist


def retrieval_metrics(
    embeddings: npt.ArrayLike | torch.Tensor,
    labels: Labels,
    *,
    metric: Metric = "cosine",
    ties: Ties = "pessimistic",
    block_size: int = BLOCK_SIZE,
) -> RetrievalResult:
    """MAP, P@10 and MR1 of a collection of embeddings (each item queries all others).

    Distances are computed ``block_size`` queries at a time, so memory grows with
    ``block_size * N``, not ``N * N`` (at 100,000 items the full matrix would take 80 GB).

    Parameters
    ----------
    embeddings : array or torch.Tensor [shape=(N, D)]
    labels : sequence of hashable or array [shape=(N,)]
        Song (work) of each item.
    metric : {"cosine", "euclidean"}
        See :func:`pairwise_distances`.
    ties : {"pessimistic", "index"}
        Tie handling (see the module docstring).
    block_size : int
        Queries per block of distances.

    Returns
    -------
    RetrievalResult

    Raises
    ------
    ParameterError
        Bad shapes, NaN/inf, unknown ``metric`` or ``ties``, a ``block_size`` under 1.
    DatasetError
        No query has a relevant item (every label occurs once).
    """
    x = _embeddings(embeddings, "embeddings")
    codes = _checked_labels(labels, x.shape[0], ties)
    check_count("block_size", block_size, 1)
    parts = [
        _rank_rows(d, start, codes, ties) for start, d in _distance_blocks(x, x, metric, block_size)
    ]
    return _result(*_joined(parts))


def retrieval_metrics_from_distances(
    distances: npt.ArrayLike | torch.Tensor,
    labels: Labels,
    *,
    ties: Ties = "pessimistic",
) -> RetrievalResult:
    """MAP, P@10 and MR1 from a precomputed distance matrix (smaller = more similar).

    Parameters
    ----------
    distances : array or torch.Tensor [shape=(N, N)]
        ``distances[q, j]`` ranks item ``j`` for query ``q`` (need not be symmetric; the
        diagonal is ignored).
    labels : sequence of hashable or array [shape=(N,)]
    ties : {"pessimistic", "index"}

    Returns
    -------
    RetrievalResult

    Raises
    ------
    ParameterError
        ``distances`` not square, NaN (inf is allowed: "never retrieved"), labels of another
        length, or unknown ``ties``.
    DatasetError
        No query has a relevant item.
    """
    d = _as_array(distances, "distances", allow_inf=True)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ParameterError(f"distances must be a square [N, N] matrix, got shape {d.shape}")
    n = d.shape[0]
    codes = _checked_labels(labels, n, ties)
    return _result(*_rank_rows(d, 0, codes, ties))


def gallery_metrics(
    distances: npt.ArrayLike | torch.Tensor,
    query_labels: Labels,
    gallery_labels: Labels,
    *,
    ties: Ties = "pessimistic",
) -> RetrievalResult:
    """MAP, P@10 and MR1 of queries against a separate gallery (queries never retrieve
    each other): the rare-song setting, where a song's other recordings query the
    training recordings.

    Parameters
    ----------
    distances : array or torch.Tensor [shape=(Q, G)]
        ``distances[q, g]``: query ``q`` to gallery item ``g`` (smaller = more similar).
    query_labels : sequence of hashable [shape=(Q,)]
    gallery_labels : sequence of hashable [shape=(G,)]
    ties : {"pessimistic", "index"}
        As in :func:`retrieval_metrics_from_distances`.

    Returns
    -------
    RetrievalResult
        Per-query arrays of length ``Q``; ``rank1 == 1`` is a top-1 hit.

    Raises
    ------
    ParameterError
        A matrix that is not ``[Q, G]`` for the labels, NaN, or unknown ``ties``.
    DatasetError
        No query's label is in the gallery.
    """
    d = _as_array(distances, "distances", allow_inf=True)
    q_codes, g_codes = _gallery_codes(query_labels, gallery_labels, ties)
    if d.ndim != 2 or d.shape != (q_codes.shape[0], g_codes.shape[0]):
        raise ParameterError(
            f"distances must be [Q={q_codes.shape[0]}, G={g_codes.shape[0]}] for the labels, "
            f"got {d.shape}"
        )
    return _result(*_rank_gallery(d, q_codes, g_codes, ties))


def gallery_metrics_from_embeddings(
    queries: npt.ArrayLike | torch.Tensor,
    gallery: npt.ArrayLike | torch.Tensor,
    query_labels: Labels,
    gallery_labels: Labels,
    *,
    metric: Metric = "cosine",
    ties: Ties = "pessimistic",
    block_size: int = BLOCK_SIZE,
) -> RetrievalResult:
    """:func:`gallery_metrics` from embeddings, ``block_size`` queries at a time (memory
    grows with ``block_size * G``, not ``Q * G``).

    Parameters
    ----------
    queries : array or torch.Tensor [shape=(Q, D)]
    gallery : array or torch.Tensor [shape=(G, D)]
    query_labels : sequence of hashable [shape=(Q,)]
    gallery_labels : sequence of hashable [shape=(G,)]
    metric : {"cosine", "euclidean"}
        See :func:`pairwise_distances`.
    ties : {"pessimistic", "index"}
        As in :func:`retrieval_metrics_from_distances`.
    block_size : int
        Queries per block of distances.

    Returns
    -------
    RetrievalResult
        As :func:`gallery_metrics`.

    Raises
    ------
    ParameterError
        Embeddings that are not 2-D, of different dimensions, with NaN/inf, labels of
        another length, an unknown ``metric`` or ``ties``, a ``block_size`` under 1.
    DatasetError
        No query's label is in the gallery.
    """
    q, g = _embeddings(queries, "queries"), _embeddings(gallery, "gallery")
    q_codes, g_codes = _gallery_codes(query_labels, gallery_labels, ties)
    if q_codes.shape[0] != q.shape[0] or g_codes.shape[0] != g.shape[0]:
        raise ParameterError(
            f"got {q_codes.shape[0]} query labels for {q.shape[0]} queries and "
            f"{g_codes.shape[0]} gallery labels for {g.shape[0]} gallery items"
        )
    if q.shape[1] != g.shape[1]:
        raise ParameterError(f"queries have {q.shape[1]} dimensions, the gallery {g.shape[1]}")
    check_count("block_size", block_size, 1)
    parts = [
        _rank_gallery(d, q_codes[start : start + d.shape[0]], g_codes, ties)
        for start, d in _distance_blocks(q, g, metric, block_size)
    ]
    return _result(*_joined(parts))


def _gallery_codes(
    query_labels: Labels, gallery_labels: Labels, ties: Ties
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Label codes of the queries and of the gallery (one code per distinct label)."""
    if ties not in ("pessimistic", "index"):
        raise ParameterError(f"ties={ties!r} must be 'pessimistic' or 'index'")
    n_q = len(query_labels)
    codes = _label_codes([*query_labels, *gallery_labels])
    return codes[:n_q], codes[n_q:]


def _rank_gallery(
    d: FloatArray, q_codes: npt.NDArray[np.int64], g_codes: npt.NDArray[np.int64], ties: Ties
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-query AP, P@10 and R1 of the rows of ``d`` [Q, G] against the gallery."""
    ap, p10, r1 = (np.full(d.shape[0], np.nan) for _ in range(3))
    for q in range(d.shape[0]):
        ap[q], p10[q], r1[q] = _rank_query(d[q], g_codes == q_codes[q], ties)
    return ap, p10, r1


def _rank_query(
    dist: FloatArray, relevant: npt.NDArray[np.bool_], ties: Ties
) -> tuple[float, float, float]:
    """Average precision, precision at 10 and rank of the first relevant item of one query
    (NaNs when nothing is relevant); ties broken pessimistically or by item index."""
    m = int(relevant.sum())
    if m == 0:
        return np.nan, np.nan, np.nan
    index = np.arange(dist.shape[0])
    if ties == "pessimistic":
        order = np.lexsort((index, relevant, dist))
    else:
        order = np.lexsort((index, dist))
    ranks = np.flatnonzero(relevant[order]) + 1  # 1-based ranks of the relevant items
    ap = float(np.mean(np.arange(1, m + 1) / ranks))
    return ap, np.count_nonzero(ranks <= _TOP_K) / _TOP_K, float(ranks[0])


def _result(ap: FloatArray, p10: FloatArray, r1: FloatArray) -> RetrievalResult:
    """Means over the queries that had a relevant item."""
    n = ap.shape[0]
    evaluated = ~np.isnan(ap)
    n_queries = int(evaluated.sum())
    n_skipped = n - n_queries
    if n_queries == 0:
        raise DatasetError(
            f"no query has a relevant item: all {n} labels are distinct, so retrieval "
            "cannot be scored (every song needs at least 2 recordings)"
        )
    if n_skipped:
        logger.info(
            "retrieval: %d of %d queries skipped (their song has no other item)", n_skipped, n
        )
    return RetrievalResult(
        map=float(ap[evaluated].mean()),
        p_at_10=float(p10[evaluated].mean()),
        mr1=float(r1[evaluated].mean()),
        n_queries=n_queries,
        n_skipped=n_skipped,
        average_precision=ap,
        precision_at_10=p10,
        rank1=r1,
    )


# --------------------------------------------------------------------------------------
# Model-level helpers
# --------------------------------------------------------------------------------------


def embed_dataset(
    model: CSINet,
    dataset: Dataset[Any],
    *,
    window: int | None = None,
    batch_size: int = 32,
    normalize: bool = True,
) -> torch.Tensor:
    """Embed every item of a dataset, in order.

    Evaluation windows: with ``window=None`` (default) a :class:`~covergan.data.CQTDataset`
    is embedded track by track at full length (the model pools over any number of frames;
    tracks of equal length share a forward pass, so results do not depend on batching);
    with ``window=w`` every track is cut to its centre ``w`` frames, or padded at the end
    with silence when shorter (``CQTDataset.windows(w, crop="center")``). The dataset's
    ``transform`` is kept, so a dataset that maps features to model space still does.
    Other datasets are used as they are (items ``(x, y, ...)`` with ``x`` [1, n_bins, T]).

    Parameters
    ----------
    model : CSINet
    dataset : CQTDataset or torch Dataset
    window : int, optional
        See above (CQTDataset only).
    batch_size : int
        Items per forward pass.
    normalize : bool
        Unit-norm embeddings.

    Returns
    -------
    torch.Tensor [shape=(N, embedding_dim), dtype=float32], on the CPU

    Raises
    ------
    ParameterError
        ``window`` given for a dataset that is not a CQTDataset, a bad ``batch_size``,
        or items that are not ``[1, n_bins, T]`` tensors.
    DatasetError
        The dataset is empty.
    """
    check_count("batch_size", batch_size, 1)
    items = _eval_items(dataset, window)
    dim = model.config.embedding_dim
    return _grouped_forward(
        model, items, batch_size, dim, lambda x: model.embed(x, normalize=normalize)
    )


def evaluate_retrieval(
    model: CSINet,
    dataset: Dataset[Any],
    *,
    window: int | None = None,
    batch_size: int = 32,
    metric: Metric = "cosine",
    ties: Ties = "pessimistic",
) -> RetrievalResult:
    """Embed a dataset with ``model`` and score retrieval among its items.

    Labels are the dataset's song ids (``CQTDataset.song_ids``) or, for other datasets,
    the second element of each item. Evaluate on songs held out by
    :func:`~covergan.data.split_by_song`, never on recordings of training songs only.

    Parameters
    ----------
    model : CSINet
    dataset : CQTDataset or torch Dataset
    window, batch_size
        See :func:`embed_dataset`.
    metric, ties
        See :func:`retrieval_metrics`.

    Returns
    -------
    RetrievalResult

    Raises
    ------
    DatasetError
        Empty dataset, or no song with two or more items.
    ParameterError
        See :func:`embed_dataset`.
    """
    embeddings = embed_dataset(model, dataset, window=window, batch_size=batch_size)
    return retrieval_metrics(embeddings, _dataset_labels(dataset), metric=metric, ties=ties)


def classification_accuracy(
    model: CSINet,
    dataset: Dataset[Any],
    *,
    index: SongIndex | None = None,
    window: int | None = None,
    batch_size: int = 32,
) -> float:
    """Fraction of items whose predicted class is their song.

    The model's class ``c`` is the song ``index.song_id(c)`` of the index it was trained
    with. Datasets made by :func:`~covergan.data.split_recordings` or ``subset`` renumber
    their classes, so pass the training set's ``index`` to compare by song id; without it
    the dataset's own class indices (second element of each item) are used.

    Parameters
    ----------
    model : CSINet
    dataset : CQTDataset or torch Dataset
    index : SongIndex, optional
        The training set's song index (``train.index``).
    window, batch_size
        See :func:`embed_dataset`.

    Returns
    -------
    float
        Accuracy in ``[0, 1]``.

    Raises
    ------
    UnknownSongError
        A song of ``dataset`` is not in ``index``.
    ParameterError
        ``index`` given for a dataset without song ids, or a class index beyond the
        model's ``n_classes``.
    DatasetError
        The dataset is empty.
    """
    check_count("batch_size", batch_size, 1)
    items = _eval_items(dataset, window)
    if index is not None:
        song_ids = getattr(dataset, "song_ids", None)
        if song_ids is None:
            raise ParameterError("index= needs a dataset with song_ids (a CQTDataset)")
        targets = torch.as_tensor(index.encode(song_ids))
    else:
        targets = torch.as_tensor(np.asarray(_dataset_class_indices(dataset), dtype=np.int64))
    n_classes = model.config.n_classes
    if int(targets.max()) >= n_classes:
        raise ParameterError(
            f"class index {int(targets.max())} is beyond the model's n_classes={n_classes}; "
            "pass the training set's index= to compare by song id"
        )
    logits = _grouped_forward(model, items, batch_size, n_classes, model)
    preds = logits.argmax(dim=1)
    return float((preds == targets).double().mean())


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _grouped_forward(
    model: CSINet,
    items: list[torch.Tensor],
    batch_size: int,
    dim: int,
    fn: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``fn`` on every item in eval mode without gradients; equal lengths share a batch."""
    device = next(model.parameters()).device
    by_length: dict[int, list[int]] = {}
    for i, x in enumerate(items):
        by_length.setdefault(int(x.shape[-1]), []).append(i)
    out = torch.empty(len(items), dim)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for idx in by_length.values():
                for s in range(0, len(idx), batch_size):
                    chunk = idx[s : s + batch_size]
                    x = torch.stack([items[i] for i in chunk]).to(device, torch.float32)
                    out[chunk] = fn(x).float().cpu()
    finally:
        model.train(was_training)
    return out


def _embeddings(x: object, name: str) -> FloatArray:
    """``x`` as a finite float64 [N, D] array."""
    a = _as_array(x, name)
    if a.ndim != 2:
        raise ParameterError(f"{name} must be [N, D], got shape {a.shape}")
    return a


def _distance_blocks(
    q: FloatArray, g: FloatArray, metric: Metric, block_size: int
) -> Iterator[tuple[int, FloatArray]]:
    """``(start, distances [block, G])`` of checked embeddings, ``block_size`` query rows at
    a time (one empty block for no queries); the gallery is prepared once."""
    if metric == "cosine":
        q, g = _unit(q), _unit(g)
    elif metric == "euclidean":
        sq_q, sq_g = (q**2).sum(axis=1), (g**2).sum(axis=1)
    else:
        raise ParameterError(f"metric={metric!r} must be 'cosine' or 'euclidean'")
    for start in range(0, max(q.shape[0], 1), block_size):
        block = q[start : start + block_size]
        if metric == "cosine":
            d = 1.0 - block @ g.T
        else:
            cross = sq_q[start : start + block_size, None] + sq_g[None, :] - 2.0 * block @ g.T
            d = np.sqrt(np.maximum(cross, 0.0))
        yield start, np.maximum(d, 0.0)


def _unit(x: FloatArray) -> FloatArray:
    """Rows scaled to unit norm (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: FloatArray = x / np.where(norms > 0, norms, 1.0)
    return out


def _rank_rows(
    d: FloatArray, start: int, codes: npt.NDArray[np.int64], ties: Ties
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-query AP, P@10 and R1 of items ``start, start + 1, ...`` (the rows of ``d``
    [block, N]) against the rest of their own collection."""
    index = np.arange(codes.shape[0])
    ap, p10, r1 = (np.full(d.shape[0], np.nan) for _ in range(3))
    for row in range(d.shape[0]):
        q = start + row
        others = index != q
        ap[row], p10[row], r1[row] = _rank_query(d[row, others], codes[others] == codes[q], ties)
    return ap, p10, r1


def _joined(
    parts: list[tuple[FloatArray, FloatArray, FloatArray]],
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-query arrays of consecutive blocks, joined."""
    ap, p10, r1 = (np.concatenate([part[k] for part in parts]) for k in range(3))
    return ap, p10, r1


def _checked_labels(labels: Labels, n: int, ties: Ties) -> npt.NDArray[np.int64]:
    """Label codes of ``n`` items; checks ``ties`` too."""
    codes = _label_codes(labels)
    if codes.shape[0] != n:
        raise ParameterError(f"got {codes.shape[0]} labels for {n} items")
    if ties not in ("pessimistic", "index"):
        raise ParameterError(f"ties={ties!r} must be 'pessimistic' or 'index'")
    return codes


def _as_array(x: object, name: str, *, allow_inf: bool = False) -> FloatArray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ParameterError(f"{name} must be numeric: {error}") from error
    bad = np.isnan(arr) if allow_inf else ~np.isfinite(arr)
    if bad.any():
        what = "NaN" if allow_inf else "NaN or inf"
        raise ParameterError(f"{name} contain {int(bad.sum())} {what} values")
    return arr


def _label_codes(labels: Labels) -> npt.NDArray[np.int64]:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    values = list(np.asarray(labels).ravel()) if isinstance(labels, np.ndarray) else list(labels)
    codes: dict[Hashable, int] = {}
    try:
        out = [codes.setdefault(v, len(codes)) for v in values]
    except TypeError as error:
        raise ParameterError(f"labels must be hashable (song ids): {error}") from error
    return np.asarray(out, dtype=np.int64)


def _eval_items(dataset: Dataset[Any], window: int | None) -> list[torch.Tensor]:
    view: Dataset[Any]
    if isinstance(dataset, CQTDataset):
        view = dataset.windows(window, crop="center")
    elif window is not None:
        raise ParameterError(
            f"window={window} needs a CQTDataset; crop items of {type(dataset).__name__} yourself"
        )
    else:
        view = dataset
    n = len(view)  # type: ignore[arg-type]
    if n == 0:
        raise DatasetError("cannot evaluate on an empty dataset")
    items = []
    for i in range(n):
        x = view[i][0]
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[0] != 1:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ParameterError(f"item {i}: expected a tensor [1, n_bins, T], got {got}")
        items.append(x)
    return items


def _dataset_labels(dataset: Dataset[Any]) -> list[Hashable]:
    song_ids = getattr(dataset, "song_ids", None)
    if song_ids is not None:
        return list(song_ids)
    return list(_dataset_class_indices(dataset))


def _dataset_class_indices(dataset: Dataset[Any]) -> list[int]:
    labels = getattr(dataset, "labels", None)
    if labels is not None:
        return [int(v) for v in np.asarray(labels).ravel()]
    return [int(dataset[i][1]) for i in range(len(dataset))]  # type: ignore[arg-type]
