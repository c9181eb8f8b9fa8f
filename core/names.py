"""Generated container names, Docker-style: `adjective_scientist`, unique among containers.

The word lists are our own (adjectives of temperament, and people who shaped computing and
science), so names read like Docker's without borrowing its list.
"""

from __future__ import annotations

import random

from dockyard.core.errors import ConflictError

__all__ = ["generate_name"]

ADJECTIVES = (
    "agile",
    "amazing",
    "bold",
    "brave",
    "bright",
    "calm",
    "careful",
    "cheerful",
    "clever",
    "curious",
    "daring",
    "eager",
    "earnest",
    "elegant",
    "fearless",
    "focused",
    "friendly",
    "gentle",
    "glad",
    "graceful",
    "happy",
    "honest",
    "humble",
    "jolly",
    "keen",
    "kind",
    "lively",
    "loyal",
    "lucid",
    "merry",
    "modest",
    "nimble",
    "noble",
    "patient",
    "peaceful",
    "polite",
    "proud",
    "quick",
    "quiet",
    "radiant",
    "serene",
    "sharp",
    "sincere",
    "steady",
    "swift",
    "tender",
    "tidy",
    "upbeat",
    "vivid",
    "warm",
    "wise",
    "witty",
    "zealous",
)
SCIENTISTS = (
    "agnesi",
    "allen",
    "babbage",
    "backus",
    "bardeen",
    "bohr",
    "boole",
    "brattain",
    "cerf",
    "curie",
    "dijkstra",
    "einstein",
    "euclid",
    "euler",
    "faraday",
    "feynman",
    "fermi",
    "gauss",
    "goldberg",
    "hamilton",
    "hopper",
    "hypatia",
    "kahan",
    "knuth",
    "kowalevski",
    "lamarr",
    "lamport",
    "liskov",
    "lovelace",
    "maxwell",
    "meitner",
    "mirzakhani",
    "newton",
    "noether",
    "pascal",
    "perlman",
    "poincare",
    "ramanujan",
    "ritchie",
    "shannon",
    "sinoussi",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wing",
    "wozniak",
    "yalow",
    "yonath",
)


def generate_name(taken: set[str], *, rng: random.Random | None = None) -> str:
    """A name not in `taken`; a digit is appended after collisions, as Docker does."""
    chooser = rng or random.SystemRandom()
    for attempt in range(100):
        name = f"{chooser.choice(ADJECTIVES)}_{chooser.choice(SCIENTISTS)}"
        if attempt >= 10:
            name += str(chooser.randint(1, 9))
        if name not in taken:
            return name
    raise ConflictError("could not generate a unique container name")
