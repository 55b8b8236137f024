"""timm MobileNetV2 checkpoints load into the mobilenet_v2 family: same logits as timm's own model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgedeploy.core.errors import WeightsError
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config
from edgedeploy.models.weights import build_model, checkpoint_num_classes


@pytest.fixture(scope="module")
def timm():  # type: ignore[no-untyped-def]
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from user_modules import import_torchvision

    try:
        import_torchvision()
    except ImportError:
        pytest.skip("torchvision is not installed (pip install -e '.[test]')")
    return pytest.importorskip("timm", reason="timm is not installed (pip install -e '.[test]')")


def _checkpoint(timm, name: str, classes: int, path: Path) -> torch.nn.Module:  # type: ignore[no-untyped-def]
    torch.manual_seed(1)
    model = timm.create_model(name, num_classes=classes).eval()
    for module in model.modules():  # trained-like statistics, so batch norm is not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    torch.save({"state_dict": model.state_dict(), "arch": name}, path)
    return model


@pytest.mark.parametrize(("name", "width"), [("mobilenetv2_100", 1.0), ("mobilenetv2_050", 0.5),
                                             ("mobilenetv2_140", 1.4)])
def test_timm_checkpoint_gives_timm_logits(timm, tmp_path: Path, name: str, width: float) -> None:  # type: ignore[no-untyped-def]
    reference = _checkpoint(timm, name, 7, tmp_path / "timm.pth")
    assert checkpoint_num_classes(str(tmp_path / "timm.pth")) == 7
    ours, loaded = build_model(MobileNetV2Config(width=width, num_classes=7), str(tmp_path / "timm.pth"))
    assert loaded is not None and loaded.key_mapping == "from_timm"
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(ours(x), reference(x), atol=1e-5, rtol=0)


def test_deeper_timm_variant_names_the_keys_that_differ(timm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _checkpoint(timm, "mobilenetv2_110d", 1000, tmp_path / "deep.pth")
    with pytest.raises(WeightsError, match="does not fit mobilenet_v2_1.0_224.*(unexpected keys|wrong shapes)"):
        build_model(MobileNetV2Config(), str(tmp_path / "deep.pth"))
