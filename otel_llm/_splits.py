"""Weighted splits of one API's traffic between aliases (``LLM_SPLITS``).

With a key (a user or tenant id), the alias is chosen by weighted rendezvous
hashing: every alias scores the key with its own hash, scaled by its weight,
and the highest score wins. The same API and key therefore get the same
alias for as long as the weights stay the same, in every process; raising
one alias's weight only moves keys to it, lowering it only moves keys away
from it, so a rollout from 10 % to 20 % moves exactly the keys it must.
Without a key each call draws at random.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from hashlib import blake2b
from itertools import accumulate

__all__ = ["Split"]

_TWO_TO_64 = float(2**64)


class Split:
    """One API's split: its aliases and their weights."""

    __slots__ = ("_aliases", "_cumulative", "_salts", "_total", "_weights", "weights")

    def __init__(self, api_key: str, weights: Mapping[str, float]) -> None:
        self.weights = dict(weights)
        """Alias -> weight, as configured."""
        self._aliases = tuple(self.weights)
        self._weights = tuple(self.weights.values())
        # ``api_key`` is the API's normalised name, so that ``gap-analysis`` and
        # ``gap_analysis`` assign a key alike.
        self._salts = tuple(f"{api_key}\0{alias}\0".encode() for alias in self._aliases)
        self._cumulative = tuple(accumulate(self._weights))
        self._total = self._cumulative[-1]

    def choose(self, key: str | None) -> str:
        """The alias for ``key``; a random draw by weight when there is no key."""
        if key is None:
            point = random.random() * self._total
            for alias, bound in zip(self._aliases, self._cumulative):
                if point < bound:
                    return alias
            return self._aliases[-1]
        encoded = key.encode()
        best, best_score = self._aliases[0], -1.0
        for alias, salt, weight in zip(self._aliases, self._salts, self._weights):
            digest = blake2b(salt + encoded, digest_size=8).digest()
            unit = (int.from_bytes(digest) + 0.5) / _TWO_TO_64  # uniform in (0, 1)
            score = weight / -math.log(unit)
            if score > best_score:
                best, best_score = alias, score
        return best

    def share(self, alias: str) -> float:
        """The fraction of traffic ``alias`` gets."""
        return self.weights.get(alias, 0.0) / self._total
