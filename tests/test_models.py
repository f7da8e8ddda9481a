import pytest
import torch

from dmtnn import models
from dmtnn.models import count_parameters, linknet18, unet


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


@pytest.mark.parametrize("name", sorted(models.BUILDERS))
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
