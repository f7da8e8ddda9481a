"""The diagrams (Figs. 1, 2, 3 and 8): readable at 700 px, drawn from the layer tables."""

import xml.etree.ElementTree as ET

import pytest
import torch
from matplotlib.patches import Circle, FancyBboxPatch

from dmtnn import diagrams
from dmtnn.models import cnn, count_parameters, dmtnn_net, layer_table, linknet18, paper_tables

SMALL = (1, 1, 64, 64)


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # shared cores


@pytest.fixture(scope="module")
def tables():
    """The layer tables of the paper's networks (256 px, width 1), built once (~1.5 s)."""
    return paper_tables()


def test_a_collapsed_segmenter_is_drawn_as_one_box():
    net = dmtnn_net(linknet18(width=0.125), image_size=64, width=0.125)
    table = layer_table(net, SMALL, collapse=["segmenter"])
    fig = diagrams.draw_dmtnn(table)  # drawn as a single box
    texts = {t.get_text() for t in fig.texts + fig.axes[0].texts}
    assert "LinkNet" in texts and "enc1" not in texts


def test_drawings_refuse_the_wrong_table(tables):
    with pytest.raises(ValueError, match="not a layer_table of DMTNN"):
        diagrams.draw_dmtnn(tables["cnn"])
    with pytest.raises(ValueError, match="not a layer_table of CNN"):
        diagrams.draw_cnn(tables["dmtnn"])


def _figures(tables):
    return {"workflow": diagrams.draw_workflow(), "sharing": diagrams.draw_sharing(),
            "dmtnn": diagrams.draw_dmtnn(tables["dmtnn"]),
            "cnn": diagrams.draw_cnn(tables["cnn"])}


def test_figures_are_readable_at_700_px(tables):
    for name, fig in _figures(tables).items():
        fig.draw_without_rendering()
        width_in = fig.get_size_inches()[0]
        assert width_in * 96 == pytest.approx(700), name
        texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_fontsize"))
                 if getattr(t, "get_text", lambda: "")().strip()]
        assert texts, name
        frame = fig.bbox
        boxes = [p.get_window_extent() for p in fig.findobj(FancyBboxPatch)]
        boxes += [p.get_window_extent() for p in fig.findobj(Circle)]
        extents = []
        for t in texts:
            # points at 700 px shown as 700 px: at least 9 pt
            assert t.get_fontsize() * 700 / (width_in * 96) >= 9, (name, t.get_text())
            e = t.get_window_extent().expanded(1.0, 0.9)  # line boxes include leading
            assert frame.containsx(e.x0) and frame.containsx(e.x1), (name, t.get_text())
            assert frame.containsy(e.y0) and frame.containsy(e.y1), (name, t.get_text())
            for b in boxes:  # a label is inside a box or clear of it, never across its edge
                if b.overlaps(e):
                    assert (b.x0 - 1 <= e.x0 and e.x1 <= b.x1 + 1
                            and b.y0 - 1 <= e.y0 and e.y1 <= b.y1 + 1), (name, t.get_text())
            extents.append((t.get_text(), e))
        for i, (ta, a) in enumerate(extents):
            for tb, b in extents[i + 1:]:
                assert not a.overlaps(b), (name, ta, tb)


def test_write_all_is_complete_and_deterministic(tmp_path):
    kwargs = {"image_size": 64, "width": 0.125}
    paths = diagrams.write_all(tmp_path / "a", **kwargs)
    diagrams.main([str(tmp_path / "b"), "--image-size", "64", "--width", "0.125"])
    assert [p.name for p in paths] == list(diagrams.FILES)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(diagrams.FILES)
    for p in paths:
        assert p.read_bytes() == (tmp_path / "b" / p.name).read_bytes(), p.name
        if p.suffix == ".svg":
            root = ET.parse(p).getroot()
            assert root.tag.endswith("svg")
            assert root.get("width") == "525pt"  # 700 px
    torch.manual_seed(0)
    totals = {"fig03_dmtnn_layers.md": dmtnn_net(linknet18(width=0.125), image_size=64,
                                             width=0.125),
              "fig08_cnn_layers.md": cnn(image_size=64, width=0.125)}
    for name, net in totals.items():
        text = (tmp_path / "a" / name).read_text(encoding="utf-8")
        assert f"**{count_parameters(net):,}**" in text, name
