from npdecode.areas import area_order, is_visual


def test_visual_areas_are_the_visual_thalamus_and_cortex() -> None:
    assert all(is_visual(a) for a in ("LGd", "LP", "VISp", "VISam", "VISmma", "VIS"))
    assert not any(is_visual(a) for a in ("CA1", "DG", "grey", "LGv", "APN"))


def test_order_follows_the_hierarchy_then_other_areas_then_grey() -> None:
    areas = ["grey", "CA1", "VISam", "VISmma", "LP", "VISp", "APN", "LGd", "VISp"]
    assert area_order(areas) == ["LGd", "VISp", "LP", "VISam", "VISmma", "APN", "CA1", "grey"]
    assert area_order(areas, first=["all", "CA1"]) == [
        "CA1",
        "LGd",
        "VISp",
        "LP",
        "VISam",
        "VISmma",
        "APN",
        "grey",
    ]
