"""Brain areas (Allen CCF structure acronyms): which are visual, and the order to show them in.

Visual areas are the eight the Allen Visual Coding – Neuropixels data set targets: the
visual thalamus (LGd, LP) and visual cortex (every `VIS*` acronym). The display order puts
them along the anatomical hierarchy measured on that data set (Siegle et al. 2021,
Nature 592:86, hierarchy score: LGd, VISp, VISl, VISrl, LP, VISal, VISpm, VISam), then
every other structure alphabetically, then `grey` (units the CCF could not place).
"""

from __future__ import annotations

from collections.abc import Iterable

HIERARCHY = ("LGd", "VISp", "VISl", "VISrl", "LP", "VISal", "VISpm", "VISam")
VISUAL_THALAMUS = ("LGd", "LP")
UNASSIGNED = "grey"


def is_visual(area: str) -> bool:
    """True for LGd, LP and every visual cortical area (`VIS*`)."""
    return area in VISUAL_THALAMUS or area.startswith("VIS")


def area_order(areas: Iterable[str], first: Iterable[str] = ()) -> list[str]:
    """`areas` without repeats: `first` ones (in their order), the visual hierarchy, other
    visual areas, other structures alphabetically, `grey` last."""
    areas = list(dict.fromkeys(areas))
    lead = [a for a in first if a in areas]
    rank = {a: i for i, a in enumerate(HIERARCHY)}

    def key(area: str) -> tuple[int, int, str]:
        if area in rank:
            return (0, rank[area], area)
        if is_visual(area):
            return (1, 0, area)
        return (3 if area == UNASSIGNED else 2, 0, area)

    return lead + sorted((a for a in areas if a not in lead), key=key)
