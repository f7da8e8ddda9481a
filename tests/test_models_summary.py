"""Layer tables (dmtnn.models.summary): counts, shapes, order, Markdown."""

import pytest
import torch

from dmtnn.models import (
    TASKS,
    cnn,
    count_parameters,
    dmtnn_net,
    format_shape,
    hard_sharing,
    layer_table,
    linknet18,
    mtnn_ws,
    paper_tables,
    soft_sharing,
    table_markdown,
    unet,
)

SMALL = (1, 1, 64, 64)


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # shared cores


@pytest.fixture(scope="module")
def paper():
    """The paper's networks (256 px, width 1) and their layer tables, built once (~1.5 s)."""
    torch.manual_seed(0)
    nets = {"dmtnn": dmtnn_net(linknet18(), image_size=256, width=1.0),
            "cnn": cnn(image_size=256, width=1.0)}
    return {k: (net, layer_table(net, (1, 1, 256, 256))) for k, net in nets.items()}


SMALL_NETS = {
    "dmtnn": lambda: dmtnn_net(linknet18(width=0.125), image_size=64, width=0.125),
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
    _assert_counts(net, layer_table(net, SMALL))


@pytest.mark.parametrize("name", ["dmtnn", "cnn"])
def test_paper_size_counts(paper, name):
    net, table = paper[name]
    _assert_counts(net, table)


def test_paper_cnn_count_by_hand(paper):
    # 3x3 convs with BN: (9 c_in + 2) c_out for 1->16, 16->32, 32->64, 64->64; then
    # 64 * 16 * 16 -> 100 (no bias, BatchNorm: 2 x 100) -> 3 fully connected:
    # 176 + 4,672 + 18,560 + 36,992 + 1,638,600 + 303
    table = paper["cnn"][1]
    assert table["parameters"].sum() == 1_699_303
    assert list(table["parameters"]) == [176, 0, 4672, 0, 18560, 0, 36992, 0, 1638600, 303]


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
    assert firsts == ["segmenter", "sharing", "phi", "mu", "kappa"]
    # the paper's shared feature map: 64 channels at full resolution
    assert table.loc[table["block"] == "sharing.conv3", "output shape"].item() == (64, 256, 256)


@pytest.mark.parametrize("size", [64, 96])
def test_last_rows_match_the_models_outputs(size):
    torch.manual_seed(0)
    shape = (2, 1, size, size)
    x = torch.zeros(shape)
    net = dmtnn_net(linknet18(width=0.125), image_size=size, width=0.125).eval()
    table = layer_table(net, shape)
    with torch.no_grad():
        out = net(x)
    seg_last = table[table["block"].str.startswith("segmenter.")].iloc[-1]
    assert seg_last["output shape"] == tuple(out["mask"].shape[1:])
    for t in TASKS:
        last = table[table["block"].str.startswith(f"extraction.{t}.")].iloc[-1]
        assert last["output shape"] == tuple(out[t][:, None].shape[1:]) == (1,)
    c = cnn(image_size=size, width=0.125).eval()
    table = layer_table(c, shape)
    with torch.no_grad():
        y = torch.stack([c(x)[t] for t in TASKS], 1)
    assert table.iloc[-1]["output shape"] == tuple(y.shape[1:]) == (3,)
    # the flattened features are what the first fully connected layer takes
    pool = table[table["layer"].str.startswith("max-pool")].iloc[-1]["output shape"]
    n_in = c.head[1].in_features
    assert pool[0] * pool[1] * pool[2] == n_in
    assert table.iloc[-2]["layer"] == f"linear {n_in} → {c.head[1].out_features}"


def test_layer_table_leaves_the_model_as_it_was():
    net = dmtnn_net(linknet18(width=0.125), image_size=64, width=0.125)
    net.train()
    rng = torch.get_rng_state()
    layer_table(net, SMALL)
    assert net.training and net.sharing.training
    assert not net.segmenter.training  # a frozen segmenter stays in eval mode
    assert all(not m._forward_hooks for m in net.modules())
    assert torch.equal(rng, torch.get_rng_state())


def test_collapse_names_one_row_per_module():
    net = dmtnn_net(linknet18(width=0.125), image_size=64, width=0.125)
    table = layer_table(net, SMALL, collapse=["segmenter"])
    row = table[table["block"] == "segmenter"]
    assert len(row) == 1 and not table["block"].str.startswith("segmenter.").any()
    assert row["parameters"].item() == count_parameters(net.segmenter)
    assert row["output shape"].item() == (1, 64, 64)
    assert table["parameters"].sum() == count_parameters(net)


def test_markdown_has_caption_rows_and_total(paper):
    net, table = paper["dmtnn"]
    md = table_markdown(table)
    lines = md.splitlines()
    assert lines[0].startswith("Generated from the model code")
    total, frozen = count_parameters(net), count_parameters(net, trainable=False)
    assert f"{total:,} parameters" in lines[0] and f"{frozen:,} frozen" in lines[0]
    rows = [ln for ln in lines if ln.startswith("|")]
    assert len(rows) == 2 + len(table) + 1  # header, separator, layers, total
    assert rows[-1] == f"| **total** | | | **{total:,}** | |"
    assert all(ln.count("|") == 6 for ln in rows)  # no stray pipes break the table


def test_paper_tables_name_their_call_and_leave_the_random_state():
    rng = torch.get_rng_state()
    tables = paper_tables(image_size=64, width=0.125)
    assert torch.equal(rng, torch.get_rng_state())
    assert tables["cnn"].attrs["call"] == "cnn(image_size=64, width=0.125)"
    assert tables["dmtnn"].attrs["model"] == "DMTNN"
    assert tables["cnn"].attrs["input_shape"] == (1, 1, 64, 64)
    assert "`dmtnn.models.layer_table`" in table_markdown(tables["dmtnn"]).splitlines()[0]
    assert format_shape(tables["cnn"].iloc[-1]["output shape"]) == "3"
    assert format_shape(None) == "–"


def test_summary_imports_nothing_outside_models():
    """Like every network module, the layer tables import nothing else from dmtnn."""
    import ast
    from pathlib import Path

    import dmtnn.models.summary as summary

    tree = ast.parse(Path(summary.__file__).read_text(encoding="utf-8"))
    names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert all(n.startswith("dmtnn.models") for n in names if n.split(".")[0] == "dmtnn")
