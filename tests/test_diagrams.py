import xml.etree.ElementTree as ET

import pytest
import torch
from matplotlib.patches import Circle, FancyBboxPatch

from dmtnn import diagrams
from dmtnn.models import (
    TASKS,
    cnn,
    count_parameters,
    dmtnn,
    hard_sharing,
    linknet18,
    mtnn_ws,
    soft_sharing,
    unet,
)

SMALL = (1, 1, 64, 64)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine's cores are shared
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def paper():
    """The paper's networks (256 px, width 1) and their layer tables, built once (~1.5 s)."""
    torch.manual_seed(0)
    nets = {"dmtnn": dmtnn(linknet18(), image_size=256, width=1.0),
            "cnn": cnn(image_size=256, width=1.0)}
    return {k: (net, diagrams.layer_table(net, (1, 1, 256, 256))) for k, net in nets.items()}


SMALL_NETS = {
    "dmtnn": lambda: dmtnn(linknet18(width=0.125), image_size=64, width=0.125),
    "mtnn_ws": lambda: mtnn_ws(image_size=64, width=0.125),
    "cnn": lambda: cnn(image_size=64, width=0.125),
    "hard_sharing": lambda: hard_sharing(image_size=64, width=0.125),
    "soft_sharing": lambda: soft_sharing(image_size=64, width=0.125),  # cross-stitch alphas
    "linknet": lambda: linknet18(width=0.125),  # trainable: residual and decoder blocks
    "unet": lambda: unet(width=0.125),
}


def _assert_counts(net, table):
    assert table["parameters"].sum() == count_parameters(net)
    by = table.groupby("trainable")["parameters"].sum()
    assert by.get("yes", 0) == count_parameters(net, trainable=True)
    assert by.get("no", 0) == count_parameters(net, trainable=False)
    assert by.get("–", 0) == 0  # rows without parameters are marked "–"
    assert "partly" not in set(table["trainable"])


@pytest.mark.parametrize("name", SMALL_NETS)
def test_parameter_column_sums_to_count_parameters(name):
    torch.manual_seed(0)
    net = SMALL_NETS[name]()
    _assert_counts(net, diagrams.layer_table(net, SMALL))


@pytest.mark.parametrize("name", ["dmtnn", "cnn"])
def test_paper_size_counts(paper, name):
    net, table = paper[name]
    _assert_counts(net, table)


def test_paper_cnn_count_by_hand(paper):
    # 3x3 convs with BN: (9 c_in + 2) c_out for 1->16, 16->32, 32->64, 64->64; then
    # 64 * 16 * 16 -> 100 -> 3 fully connected: 176 + 4,672 + 18,560 + 36,992 + 1,638,500 + 303
    table = paper["cnn"][1]
    assert table["parameters"].sum() == 1_699_203
    assert list(table["parameters"]) == [176, 0, 4672, 0, 18560, 0, 36992, 0, 1638500, 303]


def test_dmtnn_table_is_readable_and_split_as_the_paper(paper):
    table = paper["dmtnn"][1]
    # the frozen segmenter is a few stage rows, all frozen; the rest trainable
    seg = table[table["block"].str.startswith("segmenter.")]
    assert 5 <= len(seg) <= 15, list(seg["block"])
    assert set(seg["trainable"]) <= {"no", "–"}
    assert set(table.loc[~table.index.isin(seg.index), "trainable"]) <= {"yes", "–"}
    assert len(table) < 50
    # rows in forward order: segmenter, sharing network, porosity, shear, bulk subnets
    parts = [b.split(".")[0] if b.split(".")[0] != "extraction" else b.split(".")[1]
             for b in table["block"]]
    firsts = [p for i, p in enumerate(parts) if i == 0 or parts[i - 1] != p]
    assert firsts == ["segmenter", "sharing", "phi", "mu", "K"]
    # the paper's shared feature map: 64 channels at full resolution
    assert table.loc[table["block"] == "sharing.conv3", "output shape"].item() == (64, 256, 256)


@pytest.mark.parametrize("size", [64, 96])
def test_last_rows_match_the_models_outputs(size):
    torch.manual_seed(0)
    shape = (2, 1, size, size)
    x = torch.zeros(shape)
    net = dmtnn(linknet18(width=0.125), image_size=size, width=0.125).eval()
    table = diagrams.layer_table(net, shape)
    with torch.no_grad():
        out = net(x)
    seg_last = table[table["block"].str.startswith("segmenter.")].iloc[-1]
    assert seg_last["output shape"] == tuple(out["mask"].shape[1:])
    for t in TASKS:
        last = table[table["block"].str.startswith(f"extraction.{t}.")].iloc[-1]
        assert last["output shape"] == tuple(out[t][:, None].shape[1:]) == (1,)
    c = cnn(image_size=size, width=0.125).eval()
    table = diagrams.layer_table(c, shape)
    with torch.no_grad():
        y = torch.stack([c(x)[t] for t in TASKS], 1)
    assert table.iloc[-1]["output shape"] == tuple(y.shape[1:]) == (3,)
    # the flattened features are what the first fully connected layer takes
    pool = table[table["layer"].str.startswith("max-pool")].iloc[-1]["output shape"]
    n_in = c.head[1].in_features
    assert pool[0] * pool[1] * pool[2] == n_in
    assert table.iloc[-2]["layer"] == f"linear {n_in} → {c.head[1].out_features}"


def test_layer_table_leaves_the_model_as_it_was():
    net = dmtnn(linknet18(width=0.125), image_size=64, width=0.125)
    net.train()
    rng = torch.get_rng_state()
    diagrams.layer_table(net, SMALL)
    assert net.training and net.sharing.training
    assert not net.segmenter.training  # a frozen segmenter stays in eval mode
    assert all(not m._forward_hooks for m in net.modules())
    assert torch.equal(rng, torch.get_rng_state())


def test_collapse_names_one_row_per_module():
    net = dmtnn(linknet18(width=0.125), image_size=64, width=0.125)
    table = diagrams.layer_table(net, SMALL, collapse=["segmenter"])
    row = table[table["block"] == "segmenter"]
    assert len(row) == 1 and not table["block"].str.startswith("segmenter.").any()
    assert row["parameters"].item() == count_parameters(net.segmenter)
    assert row["output shape"].item() == (1, 64, 64)
    assert table["parameters"].sum() == count_parameters(net)
    diagrams.draw_dmtnn(table)  # drawn as a single box


def test_markdown_has_caption_rows_and_total(paper):
    net, table = paper["dmtnn"]
    md = diagrams.table_markdown(table)
    lines = md.splitlines()
    assert lines[0].startswith("Generated from the model code")
    total, frozen = count_parameters(net), count_parameters(net, trainable=False)
    assert f"{total:,} parameters" in lines[0] and f"{frozen:,} frozen" in lines[0]
    rows = [ln for ln in lines if ln.startswith("|")]
    assert len(rows) == 2 + len(table) + 1  # header, separator, layers, total
    assert rows[-1] == f"| **total** | | | **{total:,}** | |"
    assert all(ln.count("|") == 6 for ln in rows)  # no stray pipes break the table


def test_drawings_refuse_the_wrong_table(paper):
    with pytest.raises(ValueError, match="not a layer_table of DMTNN"):
        diagrams.draw_dmtnn(paper["cnn"][1])
    with pytest.raises(ValueError, match="not a layer_table of CNN"):
        diagrams.draw_cnn(paper["dmtnn"][1])


def _figures(paper):
    return {"workflow": diagrams.draw_workflow(), "sharing": diagrams.draw_sharing(),
            "dmtnn": diagrams.draw_dmtnn(paper["dmtnn"][1]),
            "cnn": diagrams.draw_cnn(paper["cnn"][1])}


def test_figures_are_readable_at_700_px(paper):
    for name, fig in _figures(paper).items():
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
    totals = {"fig03_dmtnn_layers.md": dmtnn(linknet18(width=0.125), image_size=64,
                                             width=0.125),
              "fig08_cnn_layers.md": cnn(image_size=64, width=0.125)}
    for name, net in totals.items():
        text = (tmp_path / "a" / name).read_text(encoding="utf-8")
        assert f"**{count_parameters(net):,}**" in text, name
