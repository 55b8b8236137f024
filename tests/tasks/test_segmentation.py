"""The segmentation task: its three data layouts and label-ID masks, one-line errors for bad sets, mIoU from
counts summed over images (exact across shards), the logits' resize, and the paired statistics."""

import shutil

import numpy as np
import pytest
from PIL import Image

from edgedeploy.core.errors import ConfigError, DataError
from edgedeploy.data.datasets import LabeledImage
from edgedeploy.tasks import DataFormat, get_task, open_images
from edgedeploy.tasks.segmentation.data import Mask
from edgedeploy.tasks.segmentation.metrics import image_iou, paired_miou, resize_bilinear

SEG = get_task("segmentation")


@pytest.fixture(scope="session")
def voc_samples(data_root):
    return data_root / "segmentation" / "voc-samples"


def _copy(voc_samples, tmp_path, stems=None):
    """The shared layout with the first ``stems`` pairs (images/ + masks/)."""
    root = tmp_path / "set"
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
        for f in sorted((voc_samples / folder).iterdir())[:stems]:
            shutil.copy(f, root / folder / f.name)
    return root


def test_the_shared_layout_pairs_images_and_masks_by_stem(voc_samples):
    dataset = SEG.open_dataset(voc_samples)
    assert len(dataset) == 14 and dataset.labeled and dataset.class_source == "images/ + masks/"
    item = next(iter(dataset))
    assert isinstance(item.label, Mask) and item.label.labels.shape == (513, 513)
    assert set(np.unique(item.label.labels)) <= set(range(21)) | {255}
    # The images alone (parity, diagnose): any task's layout.
    assert len(open_images(voc_samples)) == 14 and not open_images(voc_samples).labeled


def test_the_voc_layout_by_folder_or_by_split_file(voc_samples, tmp_path):
    voc = tmp_path / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True)
    stems = [f.stem for f in sorted((voc_samples / "images").iterdir())[:3]]
    for stem in stems:
        Image.open(voc_samples / "images" / f"{stem}.png").convert("RGB").save(voc / "JPEGImages" / f"{stem}.jpg")
        shutil.copy(voc_samples / "masks" / f"{stem}.png", voc / "SegmentationClass" / f"{stem}.png")
    (voc / "ImageSets/Segmentation/val.txt").write_text("\n".join(stems) + "\n")
    (voc / "ImageSets/Segmentation/train.txt").write_text(stems[0] + "\n")
    assert len(SEG.open_dataset(voc)) == 3 and SEG.open_dataset(voc).class_source == "PASCAL VOC (val.txt)"
    assert len(SEG.open_dataset(voc / "ImageSets/Segmentation/train.txt")) == 1
    (voc / "ImageSets/Segmentation/val.txt").write_text("\n".join([*stems, "2007_999999"]) + "\n")
    with pytest.raises(DataError, match=r"JPEGImages/2007_999999.jpg: listed in val.txt but missing"):
        SEG.open_dataset(voc)


def test_label_id_masks_and_the_ignore_index(voc_samples, tmp_path):
    root = _copy(voc_samples, tmp_path, 2)
    for mask in (root / "masks").iterdir():  # palette indices -> grayscale label IDs, 255 -> 0 as "ignore"
        ids = np.asarray(Image.open(mask)).astype(np.uint8)
        Image.fromarray(np.where(ids == 255, 0, ids + 1).astype(np.uint8), mode="L").save(mask)
    dataset = SEG.open_dataset(root, DataFormat(ignore_index=0, mask_format="label-ids"))
    item = next(iter(dataset))
    assert item.label.ignore_index == 0 and item.label.labels.max() <= 21
    with pytest.raises(DataError, match="a grayscale label-ID mask where palette masks are expected"):
        SEG.open_dataset(root, DataFormat(mask_format="palette"))


def test_a_palette_mask_where_label_ids_are_expected_is_refused(voc_samples):
    with pytest.raises(DataError, match=r"voc_val_0000.png: a palette \(indexed\) mask where label IDs are expected"):
        SEG.open_dataset(voc_samples, DataFormat(mask_format="label-ids"))


@pytest.mark.parametrize("damage, message", [
    ("resize", r"masks/voc_val_0000.png: mask is 100x513, its image voc_val_0000.png is 513x513"),
    ("no-mask", r"images/voc_val_0000.png: no mask for it in .*masks \(masks share the image's stem\)"),
    ("no-image", r"masks/voc_val_0000.png: a mask without an image in .*images"),
    ("rgb", r"masks/voc_val_0000.png: a RGB image, not a mask of class indices"),
])
def test_bad_sets_are_one_line_naming_the_file(voc_samples, tmp_path, damage, message):
    root = _copy(voc_samples, tmp_path, 2)
    mask = root / "masks" / "voc_val_0000.png"
    if damage == "resize":
        Image.open(mask).crop((0, 0, 100, 513)).save(mask)
    elif damage == "no-mask":
        mask.unlink()
    elif damage == "no-image":
        (root / "images" / "voc_val_0000.png").unlink()
    else:
        Image.open(mask).convert("RGB").save(mask)
    with pytest.raises(DataError, match=message) as error:
        SEG.open_dataset(root)
    assert "\n" not in str(error.value)


def test_class_values_above_the_class_count_name_the_mask(voc_samples, tmp_path):
    root = _copy(voc_samples, tmp_path, 1)
    mask = root / "masks" / "voc_val_0000.png"
    damaged = np.asarray(Image.open(mask)).copy()
    damaged[0, 0] = 40
    image = Image.fromarray(damaged, mode="P")
    image.putpalette(Image.open(voc_samples / "masks" / "voc_val_0000.png").getpalette())
    image.save(mask)
    accumulator = SEG.accumulator()
    item = next(iter(SEG.open_dataset(root)))
    with pytest.raises(DataError, match=r"voc_val_0000.png: class value 40 is outside the model's 21 classes "
                                        r"\(0-20; ignore index 255\)"):
        accumulator.update(np.zeros((1, 33, 33, 21), np.float32), [item])


def test_data_of_the_other_task_is_a_usage_error(voc_samples, val_dir):
    with pytest.raises(ConfigError, match="a classification data set .* but the model is a segmentation model"):
        SEG.open_dataset(val_dir)
    with pytest.raises(ConfigError, match="a segmentation data set .* but the model is a classification model"):
        get_task("classification").open_dataset(voc_samples)
    with pytest.raises(ConfigError, match="synsets does not apply to segmentation data"):
        SEG.open_dataset(voc_samples, DataFormat(synsets=val_dir))


def test_resize_is_pytorchs_half_pixel_bilinear():
    import torch
    import torch.nn.functional as F

    scores = np.random.default_rng(0).normal(size=(33, 47, 5)).astype(np.float32)
    ours = resize_bilinear(scores, (513, 129))
    theirs = F.interpolate(torch.from_numpy(scores.transpose(2, 0, 1)[None]), size=(513, 129), mode="bilinear",
                           align_corners=False)[0].numpy().transpose(1, 2, 0)
    assert np.abs(ours - theirs).max() < 5e-5  # float32 weights vs PyTorch's own rounding of the scale


def _item(labels, ignore=255):
    return LabeledImage(path=None, label=Mask(None, np.asarray(labels, np.int64), ignore), image=None)


def _one_hot(classes, size=3):
    """Logits whose argmax is ``classes`` (H, W) at the mask's own size."""
    return np.eye(size, dtype=np.float32)[np.asarray(classes)][None]


def test_miou_is_over_classes_present_from_counts_summed_over_images():
    accumulator = SEG.accumulator()
    # Image 1: class 1 half right; image 2: class 0 all right, class 2 predicted where 0 is. 255 ignored.
    accumulator.update(_one_hot([[1, 1], [0, 0]]), [_item([[1, 0], [0, 255]])])
    accumulator.update(_one_hot([[0, 2], [0, 0]]), [_item([[0, 0], [0, 0]])])
    metrics = accumulator.metrics(False)
    # class 0: I=4 (1 + 3), P=4, L=6 -> U=6; class 1: I=1, P=2, L=1 -> U=2; class 2 absent from labels.
    assert metrics["miou"] == pytest.approx(100 * (4 / 6 + 1 / 2) / 2, abs=1e-4)
    assert metrics["pixel_accuracy"] == pytest.approx(100 * 5 / 7, abs=1e-4) and metrics["classes"] == 2
    records = accumulator.records()
    assert records["labeled"].tolist() == [[2, 1, 0], [4, 0, 0]]
    # Per image: mean IoU over classes labeled or predicted there.
    assert image_iou(records) == pytest.approx([100 * (1 / 2 + 1 / 2) / 2, 100 * (3 / 4 + 0) / 2])
    other = SEG.accumulator()
    other.load(accumulator.sums(), records)
    assert other.metrics(False) == metrics


def test_paired_miou_interval_and_wilcoxon():
    rng = np.random.default_rng(0)
    n, classes = 14, 4
    labeled = rng.integers(50, 100, (n, classes))
    reference = {"intersection": labeled - 5, "predicted": labeled.copy(), "labeled": labeled}
    same = paired_miou(reference, reference, 0.95)
    assert same.drop.estimate == 0 and same.p_loss == 1.0 and (same.lost, same.gained) == (0, 0)
    worse = {"intersection": labeled - 25, "predicted": labeled + 10, "labeled": labeled}
    paired = SEG.paired(reference, worse, 0.95)
    assert paired.test == "Wilcoxon" and paired.lost == n and paired.p_loss < 0.001
    assert 0 < paired.drop.low <= paired.drop.estimate <= paired.drop.high
