"""A cell's synapses as every layer sees them: the rows a table gives (``SynapseRows``) and
those rows mapped onto a morphology (``SynapseTable``, carried by the Skeleton it is mapped
onto, so that every morphology writer reads the same rows).

Here, below the model, because the retrieval layer makes rows (CAVE, a file), processing maps
them and the writers write them, and none of those may import another. Positions are kept in
nanometres (as CAVE gives them at ``desired_resolution=[1, 1, 1]``); a writer converts them to
the morphology's units.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["SynapseRows", "SynapseTable", "INPUT", "OUTPUT", "UNKNOWN", "TAGS"]

INPUT, OUTPUT, UNKNOWN = "input", "output", "unknown"
TAGS = ("soma", "shaft", "spine")


def _ints(values, n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.int64) if values is None else np.asarray(values).astype(np.int64).reshape(-1)


@dataclass
class SynapseRows:
    """Synapses as a table lists them: ``ids``, ``pre``/``post`` root ids (0: not known),
    ``size`` (NaN: not given), ``positions`` (n, 3) in nm, ``tags`` a predicted soma/shaft/spine
    per row ('' where there is none), and ``source``: where they came from (for the sidecar)."""

    ids: np.ndarray
    pre: np.ndarray
    post: np.ndarray
    size: np.ndarray
    positions: np.ndarray
    tags: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        n = len(self.positions)
        self.ids = _ints(self.ids, n)
        self.pre, self.post = _ints(self.pre, n), _ints(self.post, n)
        self.size = (np.full(n, np.nan) if self.size is None
                     else np.asarray(self.size, dtype=np.float64).reshape(-1))
        self.tags = (np.full(n, "", dtype=object) if self.tags is None
                     else np.asarray(self.tags, dtype=object).reshape(-1))

    def __len__(self) -> int:
        return len(self.positions)

    def directions(self, root_id: int | None) -> np.ndarray:
        """input (``post == root_id``), output (``pre == root_id``) or unknown, per row; an
        autapse counts as an input (a simulator drives the cell through it)."""
        out = np.full(len(self), UNKNOWN, dtype=object)
        if root_id is None:
            return out
        out[self.pre == int(root_id)] = OUTPUT
        out[self.post == int(root_id)] = INPUT
        return out

    def partners(self, root_id: int | None) -> np.ndarray:
        """The other cell's root id per row (0 where the direction is unknown)."""
        directions = self.directions(root_id)
        return np.where(directions == INPUT, self.pre, np.where(directions == OUTPUT, self.post, 0))

    def select(self, keep) -> "SynapseRows":
        return replace(self, ids=self.ids[keep], pre=self.pre[keep], post=self.post[keep], size=self.size[keep],
                       positions=self.positions[keep], tags=self.tags[keep])


@dataclass
class SynapseTable:
    """Rows mapped onto a skeleton: per row the node it sits at (-1: not placed, ``reason``
    says why), ``pos`` the fraction from that node towards its parent, ``distance`` from the
    synapse to that point of the skeleton's axis (nm), ``tag`` (soma/shaft/spine; '' for an
    output when no prediction says), where the tag came from, and ``spine_node`` (the tip of
    the drawn spine the synapse sits on, -1 otherwise). Node indices are into the skeleton it
    travels with (its nodes' positions at mapping time in ``anchors``, nm, to catch a reorder)."""

    rows: SynapseRows
    root_id: int | None
    direction: np.ndarray
    partner: np.ndarray
    node: np.ndarray
    pos: np.ndarray
    distance: np.ndarray
    radius: np.ndarray  # the skeleton's radius at the mapped point (nm)
    tag: np.ndarray
    tag_source: np.ndarray
    spine_node: np.ndarray
    reason: np.ndarray
    anchors: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def placed(self) -> np.ndarray:
        return self.node >= 0

    def counts(self) -> dict[str, Any]:
        """What the sidecar records: rows, placed, not placed (and why), per direction and tag."""
        placed = self.placed
        reasons: dict[str, int] = {}
        for reason in self.reason[~placed]:
            key = str(reason).split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1

        def tally(values) -> dict[str, int]:
            names, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
            return {str(k) or "none": int(v) for k, v in zip(names, counts)}

        return {"rows": int(len(self)), "placed": int(placed.sum()), "not_placed": int((~placed).sum()),
                "not_placed_reasons": reasons, "direction": tally(self.direction),
                "tag": tally(self.tag[placed]), "tag_source": tally(self.tag_source[placed]),
                "source": self.rows.source, **self.info}
