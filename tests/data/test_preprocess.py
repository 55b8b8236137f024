import numpy as np
import pytest
from PIL import Image

from edgedeploy.core.errors import DataError
from edgedeploy.core.io_spec import Preprocessing
from edgedeploy.data.preprocess import load_and_preprocess, load_image, preprocess


def _gradient(w: int, h: int) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    return Image.fromarray(np.stack([x, x[::-1, ::-1], np.full_like(x, 128)], -1).astype(np.uint8))


def test_resolution_scaling_follows_the_0_875_crop():
    assert (Preprocessing.for_resolution(224).resize, Preprocessing.for_resolution(224).crop) == (256, 224)
    assert Preprocessing.for_resolution(160).resize == 182
    assert Preprocessing.for_resolution(96).resize == 109


def test_shorter_side_resize_then_center_crop_matches_torchvision_arithmetic():
    spec = Preprocessing.for_resolution(224, mean=(0, 0, 0), std=(1, 1, 1))
    img = _gradient(400, 300)  # landscape: height is the short side
    out = preprocess(img, spec)
    assert out.shape == (224, 224, 3)
    # torchvision: Resize(256) -> 341x256 (int(256 * 400 / 300)), crop left = round((341 - 224) / 2) = 58.
    expected = np.asarray(img.resize((341, 256), Image.Resampling.BILINEAR), dtype=np.float32)[16:240, 58:282] / 255
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_normalization_and_raw_pixels():
    img = Image.new("RGB", (256, 256), (255, 0, 128))
    norm = preprocess(img, Preprocessing.for_resolution(224, mean=(0.5,) * 3, std=(0.5,) * 3))
    np.testing.assert_allclose(norm[0, 0], [1.0, -1.0, 128 / 255 * 2 - 1], atol=1e-6)
    raw = preprocess(img, Preprocessing.for_resolution(224, raw_pixels=True))
    np.testing.assert_array_equal(raw[0, 0], [255, 0, 128])


def test_bad_mean_std_are_rejected():
    from edgedeploy.core.errors import ConfigError

    with pytest.raises(ConfigError, match="positive"):
        Preprocessing.for_resolution(224, std=(0.5, 0, 0.5))
    with pytest.raises(ConfigError, match="three values"):
        Preprocessing.for_resolution(224, mean=(0.5, 0.5))


def test_grayscale_and_rgba_become_rgb(tmp_path):
    Image.new("L", (50, 40), 77).save(tmp_path / "g.png")
    Image.new("RGBA", (50, 40), (1, 2, 3, 4)).save(tmp_path / "a.png")
    assert load_image(tmp_path / "g.png").mode == "RGB"
    assert load_and_preprocess(tmp_path / "a.png", Preprocessing.for_resolution(96)).shape == (96, 96, 3)


@pytest.mark.parametrize("content", [b"", b"hello", b"\xff\xd8\xff\xe0 truncated jpeg"])
def test_non_images_raise_one_line_data_errors(tmp_path, content):
    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    with pytest.raises(DataError, match="not a readable image"):
        load_image(path)


def test_missing_image():
    with pytest.raises(DataError, match="no such image file"):
        load_image("/nonexistent/cat.jpg")
