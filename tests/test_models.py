import pytest
import torch

from dmtnn import models
from dmtnn.models import TASKS, cnn, count_parameters, dmtnn_net, linknet18, mtnn_ws, unet

# -- the contract every registered network keeps ----------------------------------------

WIDTH, SIZE, BATCH = 0.125, 64, 2
ALL = models.names()


def make(name: str, seed: int = 0, size: int = SIZE) -> torch.nn.Module:
    """Registry entry ``name`` at a small width, its arguments from the registry alone."""
    spec = models.network(name)
    torch.manual_seed(seed)
    kwargs = {"width": WIDTH}
    if spec.sized:
        kwargs["image_size"] = size
    if spec.segmenter:
        kwargs["segmenter"] = models.build("linknet", width=WIDTH)
    return models.build(name, **kwargs)


def outputs(out) -> dict[str, torch.Tensor]:
    """A segmenter's single tensor is its ``"mask"`` output (as the training loop reads it)."""
    return dict(out) if isinstance(out, dict) else {"mask": out}


def images(size: int = SIZE, batch: int = BATCH) -> torch.Tensor:
    return torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(0))


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # shared cores


def test_the_registry_holds_every_network_once():
    from dmtnn.multitask import NETWORKS
    from dmtnn.segmentation import ARCHITECTURES

    assert ALL == ("linknet", "unet", "dmtnn", "mtnn_ws", "cnn", "hard_sharing",
                   "soft_sharing")
    assert models.names("segmentation") == ARCHITECTURES == ("linknet", "unet")
    assert models.names("regression") == NETWORKS
    assert {n: models.REGISTRY[n].name for n in ALL} == {n: n for n in ALL}
    assert not hasattr(models, "dmtnn")  # the package's name is not a model's


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("size", [SIZE, 2 * SIZE])
def test_forward_gives_the_documented_outputs_and_backward_reaches_every_weight(name, size):
    spec = models.network(name)
    net = make(name, size=size).train()
    out = outputs(net(images(size)))
    assert {k: tuple(v.shape) for k, v in out.items()} == spec.outputs(BATCH, size)
    assert all(torch.isfinite(v).all() for v in out.values())
    sum(v.float().mean() for k, v in out.items() if k != "mask" or len(out) == 1).backward()
    trainable = [(k, p) for k, p in net.named_parameters() if p.requires_grad]
    assert trainable
    assert [k for k, p in trainable if p.grad is None] == []
    frozen = [p for p in net.parameters() if not p.requires_grad]
    assert bool(frozen) == spec.segmenter  # only DMTNN's segmenter is frozen
    assert all(p.grad is None for p in frozen)


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip_gives_identical_outputs(name):
    a, b = make(name, seed=0).eval(), make(name, seed=1).eval()
    x = images()
    with torch.no_grad():
        before = outputs(b(x))
        b.load_state_dict(a.state_dict())
        ya, yb = outputs(a(x)), outputs(b(x))
    assert any(not torch.equal(before[k], ya[k]) for k in ya)  # seeds give other weights
    assert all(torch.equal(ya[k], yb[k]) for k in ya)
    again = make(name, seed=0).state_dict()  # same seed, same initial weights
    assert all(torch.equal(v, again[k]) for k, v in a.state_dict().items())


@pytest.mark.parametrize("name", ALL)
def test_channels_last_input_gives_the_same_outputs(name):
    net = make(name).eval()
    x = images()
    with torch.no_grad():
        ref = outputs(net(x))
        net.to(memory_format=torch.channels_last)  # as the training loop does on CUDA
        out = outputs(net(x.contiguous(memory_format=torch.channels_last)))
    for k, v in ref.items():
        torch.testing.assert_close(out[k].contiguous(), v, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_bf16_autocast_forward_on_the_cpu(name):
    spec = models.network(name)
    net = make(name).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = outputs(net(images()))
    assert {k: tuple(v.shape) for k, v in out.items()} == spec.outputs(BATCH, SIZE)
    assert all(torch.isfinite(v.float()).all() for v in out.values())


def test_registry_lookups_name_what_is_valid():
    with pytest.raises(ValueError, match="unknown model 'segnet'; choose one of linknet, unet"):
        models.build("segnet")
    with pytest.raises(ValueError, match="unknown segmentation network 'cnn'; choose one of "
                                         "linknet, unet$"):
        models.build("cnn", kind="segmentation")
    with pytest.raises(ValueError, match="unknown regression network 'unet'"):
        models.network("unet", "regression")
    with pytest.raises(ValueError, match="kind"):
        models.names("detection")
    assert models.network("dmtnn").outputs(3, 32, tasks=("mu",)) == {"mu": (3,),
                                                                    "mask": (3, 1, 32, 32)}


# -- what each network is ---------------------------------------------------------------


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


@pytest.mark.parametrize("name", models.names("segmentation"))
@pytest.mark.parametrize("size", [(32, 32), (64, 96), (96, 64)])
def test_segmenters_are_fully_convolutional(name, size):
    spec = models.network(name)
    with torch.no_grad():
        y = make(name).eval()(torch.zeros(1, 1, *size))
    assert tuple(y.shape) == spec.outputs(1, size)["mask"]


def test_sizes_not_divisible_are_refused_clearly():
    with pytest.raises(ValueError, match="multiples of 32"):
        linknet18(width=0.125)(torch.zeros(1, 1, 48, 64))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        linknet18(width=0.125)(torch.zeros(1, 64, 64))


def test_bad_width_is_named():
    with pytest.raises(ValueError, match="width must be positive"):
        linknet18(width=0)


def test_dmtnn_has_the_papers_parameter_counts():
    # paper: about 2.2e7 parameters, 1.10e7 trainable, 1.15e7 frozen (the segmenter)
    net = dmtnn_net(linknet18(), image_size=256, width=1.0)
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
    net = dmtnn_net(seg, image_size=64, width=0.125)
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


def test_mtnn_ws_is_dmtnn_without_the_segmenter():
    a = dmtnn_net(linknet18(width=0.125), image_size=64, width=0.125)
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


# -- the two channel multipliers and Appendix A's depths ----------------------------------


def trainable(name: str, size: int, width: float, head_width: float, **kwargs) -> int:
    """Trainable parameters of a registry network at a configuration's two multipliers
    (built on the meta device: shapes only, no arithmetic)."""
    spec = models.network(name)
    with torch.device("meta"):
        net = spec.build(image_size=size, **spec.width_kwargs(width, head_width), **kwargs)
    return count_parameters(net)


@pytest.mark.parametrize("name", models.names("regression"))
def test_head_width_1_with_width_1_is_the_papers_network(name):
    kwargs = {"segmenter": linknet18()} if name == "dmtnn" else {}
    spec = models.network(name)
    paper = count_parameters(spec.build(image_size=256, width=1.0, **kwargs), trainable=True)
    split = spec.build(image_size=256, **spec.width_kwargs(1.0, 1.0), **kwargs)
    assert count_parameters(split, trainable=True) == paper


def convs(m: torch.nn.Module) -> list[int]:
    return [c.out_channels for c in m.modules() if isinstance(c, torch.nn.Conv2d)]


def linears(m: torch.nn.Module) -> list[int]:
    return [c.out_features for c in m.modules() if isinstance(c, torch.nn.Linear)]


def test_width_scales_the_full_resolution_parts_and_head_width_the_cheap_ones():
    net = mtnn_ws(image_size=128, width=0.125, head_width=1.0)
    # full resolution: the sharing network (256, 256, 128, 128, 64 x 0.125) and the
    # first feature module (32 x 0.125); pooled: the second module and the layers after
    assert convs(net.sharing) == [32, 32, 16, 16, 8]
    for t in TASKS:
        sub = getattr(net.extraction, t)
        assert convs(sub.modules_[0]) == [4, 4] and convs(sub.modules_[1]) == [32, 32]
        assert linears(sub.fc) == [240, 64, 1]
    # the CNN pools after every stage: all of it is built at head_width
    cnn_net = models.build("cnn", image_size=128, **models.network("cnn").width_kwargs(0.125, 1.0))
    assert convs(cnn_net) == [16, 32, 64, 64] and linears(cnn_net) == [100, 3]
    assert models.network("linknet").width_kwargs(0.25, 1.0) == {"width": 0.25}


def test_stage_pools_end_every_depth_on_the_same_map():
    from dmtnn.models.dmtnn_net import stage_pools

    assert [stage_pools(128, d) for d in range(1, 6)] == [
        (16,), (4, 4), (4, 2, 2), (2, 2, 2, 2), (2, 2, 2, 2, 2)]
    assert stage_pools(64, 2) == (4, 4) and stage_pools(32, 2) == (4, 2)  # >= 4 px left
    with pytest.raises(ValueError, match="depth must be at least 1"):
        stage_pools(64, 0)
    with pytest.raises(ValueError, match="too small"):
        stage_pools(8, 4)


@pytest.mark.parametrize(("size", "width", "head_width"),
                         [(128, 0.125, 1.0), (256, 0.5, 1.0), (256, 1.0, 1.0), (64, 0.125, 0.125)])
def test_appendix_depths_have_comparable_capacity(size, width, head_width):
    # quick, book and paper widths (and a uniform one): every depth within x2 of depth 2
    n = {d: trainable("mtnn_ws", size, width, head_width, depth=d)
         for d in (1, 2, 3, 4)}
    assert all(0.5 <= n[d] / n[2] <= 2 for d in n), n
    assert n[2] < n[3] < n[4]  # the same fully connected layers, one more module each


def test_depth_1_pools_less_when_its_module_is_narrower_than_the_head():
    # quick widths, 128 px: depth 2 ends on 32 channels (head_width 1) of 128 / 16 = 8 px;
    # depth 1's module has 4 channels (width 0.125), 8x fewer: k = floor(log2(8) / 2) = 1,
    # it pools by 16 / 2 = 8, and its first fully connected layer sees 4 x 16 x 16 inputs
    first_fc = {}
    for depth in (1, 2, 3):
        net = mtnn_ws(image_size=128, width=0.125, head_width=1.0, depth=depth)
        first_fc[depth] = [getattr(net.extraction, t).fc[1].in_features for t in TASKS]
    assert first_fc == {1: [4 * 16 * 16, 8 * 16 * 16, 8 * 16 * 16],
                        2: [32 * 8 * 8, 64 * 8 * 8, 64 * 8 * 8],
                        3: [32 * 8 * 8, 64 * 8 * 8, 64 * 8 * 8]}
