import pytest
import torch

from dmtnn import models
from dmtnn.models import TASKS, cnn, count_parameters, dmtnn, linknet18, mtnn_ws, unet


def test_linknet_has_the_papers_parameter_count():
    # paper: the frozen segmentation part of DMTNN has about 1.15e7 parameters
    n = count_parameters(linknet18(in_channels=1, width=1.0))
    assert abs(n - 1.15e7) / 1.15e7 < 0.05, n


def test_unet_has_the_classic_parameter_count():
    # Ronneberger et al. 2015: about 3.1e7 parameters with 64..1024 channels
    n = count_parameters(unet(in_channels=1, width=1.0))
    assert abs(n - 3.1e7) / 3.1e7 < 0.05, n


def test_width_shrinks_the_network():
    full, small = (count_parameters(linknet18(width=w)) for w in (1.0, 0.25))
    assert small < full / 10  # parameters scale about as width**2


@pytest.mark.parametrize("name", ["linknet", "unet"])
@pytest.mark.parametrize("size", [(32, 32), (64, 96), (96, 64)])
def test_segmenters_are_fully_convolutional(name, size):
    net = models.build(name, width=0.125)
    x = torch.randn(2, 1, *size, generator=torch.Generator().manual_seed(0))
    y = net(x)
    assert y.shape == (2, 1, *size)
    y.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_sizes_not_divisible_are_refused_clearly():
    with pytest.raises(ValueError, match="multiples of 32"):
        linknet18(width=0.125)(torch.zeros(1, 1, 48, 64))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        linknet18(width=0.125)(torch.zeros(1, 64, 64))


def test_unknown_model_and_bad_width_are_named():
    with pytest.raises(ValueError, match="unknown model 'segnet'"):
        models.build("segnet")
    with pytest.raises(ValueError, match="width must be positive"):
        linknet18(width=0)


def test_same_seed_same_initial_weights():
    torch.manual_seed(3)
    a = linknet18(width=0.125).state_dict()
    torch.manual_seed(3)
    b = linknet18(width=0.125).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_dmtnn_has_the_papers_parameter_counts():
    # paper: about 2.2e7 parameters, 1.10e7 trainable, 1.15e7 frozen (the segmenter)
    net = dmtnn(linknet18(), image_size=256, width=1.0)
    total = count_parameters(net)
    trainable = count_parameters(net, trainable=True)
    frozen = count_parameters(net, trainable=False)
    assert abs(total - 2.2e7) / 2.2e7 < 0.10, total
    assert abs(trainable - 1.10e7) / 1.10e7 < 0.10, trainable
    assert abs(frozen - 1.15e7) / 1.15e7 < 0.05, frozen


def test_cnn_has_the_papers_parameter_count():
    n = count_parameters(cnn(image_size=256, width=1.0))
    assert abs(n - 1.7e6) / 1.7e6 < 0.10, n


def test_frozen_segmenter_gets_no_gradient_and_never_changes():
    torch.manual_seed(0)
    seg = linknet18(width=0.125)
    net = dmtnn(seg, image_size=64, width=0.125)
    before = {k: v.clone() for k, v in seg.state_dict().items()}  # weights and BN statistics
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.1)
    net.train()
    assert not seg.training  # its BatchNorm keeps the statistics it was trained with
    x = torch.randn(4, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    for _ in range(2):
        out = net(x)
        loss = sum(out[t].square().mean() for t in TASKS)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(p.grad is None for p in seg.parameters())
    assert all(torch.equal(before[k], v) for k, v in seg.state_dict().items())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.sharing.parameters())


@pytest.mark.parametrize("name", ["dmtnn", "mtnn_ws", "cnn", "hard_sharing", "soft_sharing"])
@pytest.mark.parametrize("size", [64, 128])
def test_regression_networks_give_three_numbers_per_image(name, size):
    kwargs = {"image_size": size, "width": 0.125}
    if name == "dmtnn":
        kwargs["segmenter"] = linknet18(width=0.125)
    net = models.build(name, **kwargs)
    out = net(torch.randn(3, 1, size, size, generator=torch.Generator().manual_seed(0)))
    assert {t: out[t].shape for t in TASKS} == {t: (3,) for t in TASKS}
    assert ("mask" in out) == (name == "dmtnn")
    sum(out[t].sum() for t in TASKS).backward()
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in trainable)


def test_mtnn_ws_is_dmtnn_without_the_segmenter():
    a = dmtnn(linknet18(width=0.125), image_size=64, width=0.125)
    b = mtnn_ws(image_size=64, width=0.125)
    assert count_parameters(b) == count_parameters(a, trainable=True)
    with pytest.raises(ValueError, match="too small"):
        mtnn_ws(image_size=2)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_appendix_depths_and_single_task_models(depth):
    net = mtnn_ws(image_size=64, width=0.125, depth=depth)
    assert len(net.extraction.phi.modules_) == depth
    out = net(torch.zeros(2, 1, 64, 64))
    assert sorted(out) == sorted(TASKS)
    single = mtnn_ws(image_size=64, width=0.125, depth=depth, tasks=("mu",))
    assert list(single(torch.zeros(2, 1, 64, 64))) == ["mu"]
    # a single-task subnet has no porosity features to concatenate: it is smaller
    assert count_parameters(single.extraction) < count_parameters(net.extraction.mu)
    with pytest.raises(ValueError, match="subset"):
        mtnn_ws(image_size=64, tasks=("E",))
