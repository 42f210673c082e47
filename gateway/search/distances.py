"""OpenSearch scores ↔ the distances APIs promise, for every space type we index. Pure.

- ``knn_cosine`` (lucene ``cosinesimil``): OpenSearch scores ``(1 + cos) / 2``. Distance is
  the Euclidean distance between the L2-normalised embeddings, ``sqrt(2 - 2 cos)``, in
  [0, 2]: 0 for the same picture, ~1.41 for unrelated ones.
- ``dup_signature`` (near-duplicates, ``dsl.near_duplicates_body``): the script scores
  ``64 - bits``; distance is the number of differing bits between the item's closest stored
  box hash and the query's closest probe (``imgsearch.dupes``).
"""

from __future__ import annotations

import math


def cosine_from_score(score: float) -> float:
    return 2.0 * score - 1.0


def distance_from_cosine(cosine: float) -> float:
    return math.sqrt(max(0.0, 2.0 - 2.0 * cosine))


def distance_from_score(score: float) -> float:
    """Euclidean distance of unit vectors from a lucene ``cosinesimil`` score."""
    return distance_from_cosine(cosine_from_score(score))


def score_from_distance(distance: float) -> float:
    """The lucene ``cosinesimil`` score at Euclidean distance ``distance`` (radial search)."""
    cosine = 1.0 - distance * distance / 2.0
    return (1.0 + cosine) / 2.0


def hash_bits_from_score(score: float) -> int:
    """Bits from the near-duplicate script's score ``64 - bits``."""
    return round(64.0 - score)


def score_from_hash_bits(bits: int) -> float:
    """The ``min_score`` keeping items within ``bits`` (half a bit of slack for float32)."""
    return 64.0 - bits - 0.5
