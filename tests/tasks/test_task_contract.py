"""Every registered task keeps one contract, so a new task is tested by registering it: its data set, written
in its own layout, opens (and another task's does not); its accumulator scores perfect predictions 100 and wrong
ones lower, a model agrees 100% with itself, shards merge and saved sums reload exactly, the paired test sees the
drop; and the gate's thresholds are named after its metric.

The data sets are tiny synthetic ones written with Pillow, one writer per data layout (not per task): a task
is given the layout it claims as its own (``Task.layout_match``). A task whose layout none of the writers
produces skips the data checks, saying so; add a writer for its layout here."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.io_spec import InputSpec, ModelIO, Outputs
from edgedeploy.core.outputs import concat_outputs, map_outputs, take_rows
from edgedeploy.recipes.schema import Thresholds
from edgedeploy.tasks import TASKS, DataFormat, Task, get_task, task_rows

SIZE = (24, 20)  # (width, height) of every synthetic image and mask
IGNORE = 255


@dataclass
class Written:
    """A synthetic labelled data set: where it is, how to open it, and the truth the writer put in it."""

    path: Path
    options: DataFormat
    num_classes: int
    # Per image (in file-name order, as the readers list them): its class index, or its (H, W) class map
    # with IGNORE where pixels are not scored.
    truth: dict[str, Any]


def _noise(rng: np.random.Generator, path: Path) -> None:
    Image.fromarray(rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)).save(path)


def class_folders(root: Path) -> Written:
    """``<wnid>/<image>.png``, class indices from a synsets file listed out of sorted order (so an index that
    came from the folder order instead would be caught), passed as the ``synsets`` data option."""
    rng = np.random.default_rng(0)
    wnids = ["n00000003", "n00000001", "n00000004", "n00000002", "n00000000"]
    synsets = root.parent / f"{root.name}-synsets.txt"
    root.mkdir(parents=True)
    synsets.write_text("".join(f"{w} class {i}\n" for i, w in enumerate(wnids)))
    truth = {}
    for wnid in ("n00000001", "n00000002", "n00000004"):
        (root / wnid).mkdir()
        for k in range(2):
            _noise(rng, root / wnid / f"{wnid}_{k}.png")
            truth[f"{wnid}_{k}"] = wnids.index(wnid)
    return Written(root, DataFormat(synsets=synsets), len(wnids), truth)


def images_and_masks(root: Path) -> Written:
    """``images/`` + ``masks/`` with the same stems; masks are grayscale label-ID PNGs with an ignored border."""
    rng = np.random.default_rng(1)
    classes = 4
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    truth = {}
    for k in range(4):
        labels = rng.integers(0, classes, (SIZE[1], SIZE[0])).astype(np.uint8)
        labels[0, :] = IGNORE
        labels[:, k % 2] = k  # every class present somewhere in the set
        _noise(rng, root / "images" / f"img_{k}.png")
        Image.fromarray(labels, mode="L").save(root / "masks" / f"img_{k}.png")
        truth[f"img_{k}"] = labels.astype(np.int64)
    return Written(root, DataFormat(ignore_index=IGNORE, mask_format="label-ids"), classes, truth)


def coco_boxes(root: Path) -> Written:
    """``instances.json`` + ``images/``: one or two boxes an image, COCO ids 1-3 (truth: each image's ids)."""
    rng = np.random.default_rng(2)
    (root / "images").mkdir(parents=True)
    images, annotations, truth = [], [], {}
    for k in range(4):
        _noise(rng, root / "images" / f"box_{k}.png")
        images.append({"id": k + 1, "file_name": f"box_{k}.png", "width": SIZE[0], "height": SIZE[1]})
        boxes = [(1 + k % 3, [2.0, 2.0, 10.0, 8.0])] + ([(1 + (k + 1) % 3, [12.0, 9.0, 10.0, 10.0])] if k % 2 else [])
        for category, box in boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": k + 1, "category_id": category, "bbox": box,
                                "area": box[2] * box[3], "iscrowd": 0})
        truth[f"box_{k}"] = np.array([c for c, _ in boxes], np.int64)
    categories = [{"id": i, "name": f"thing {i}"} for i in (1, 2, 3)]
    (root / "instances.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                     "categories": categories}))
    return Written(root, DataFormat(), 3, truth)


# One writer per data layout; a new task whose layout is not among these skips its data checks.
WRITERS: dict[str, Callable[[Path], Written]] = {"class-folders": class_folders, "images+masks": images_and_masks,
                                                 "coco": coco_boxes}

# A value for each DataFormat field (to check that a task refuses the options it does not take).
OPTION_VALUES = {"synsets": Path("synsets.txt"), "ignore_index": IGNORE, "mask_format": "label-ids",
                 "annotations": Path("instances.json")}


@dataclass(frozen=True)
class _Config:
    """What a task's output specs and IO extras read of a model config (a detector's: a 4x4 anchor grid)."""

    num_classes: int
    resolution: int = 32
    width: float = 1.0

    def detection_parameters(self) -> dict[str, Any]:
        return {"anchors": {"feature_map_sizes": [4], "aspect_ratios": [1.0], "interpolated_scale_aspect_ratio": 0.0,
                            "reduce_boxes_in_lowest_layer": False},
                "box_scales": [10.0, 10.0, 5.0, 5.0], "labels": "contiguous",
                "nms": {"score_threshold": 0.3, "iou_threshold": 0.5, "max_detections": 10, "mode": "fast"}}


def _io(task: Task, num_classes: int) -> ModelIO:
    config = _Config(num_classes)
    first, *more = task.output_specs(config)
    return ModelIO(InputSpec("input", (1, 3, 32, 32)), first, task.preprocessing(32, (0.5,) * 3, (0.5,) * 3),
                   task=task.name, extra=task.io_extra(config), more_outputs=tuple(more))


@pytest.fixture()
def layouts(tmp_path) -> dict[str, Written]:
    return {name: write(tmp_path / name) for name, write in WRITERS.items()}


def own_data(task: Task, layouts: dict[str, Written]) -> Written:
    """The written data set ``task`` claims as its own: it reads it, and no other task claims it more."""
    for written in layouts.values():
        mine = task.layout_match(written.path)
        others = [t.layout_match(written.path) for t in task_rows() if t.name != task.name]
        if mine > 0 and mine >= max(others, default=0):
            return written
    pytest.skip(f"no synthetic data set in {task.name}'s layout ({task.describe_layout()}): add a writer for it to "
                "WRITERS in tests/tasks/test_task_contract.py")


def _label_array(label: Any) -> np.ndarray:
    """A label as an array of class indices: a class index itself, a mask's (H, W) class map, or an image's
    boxes' category ids."""
    return np.asarray(getattr(label, "categories", getattr(label, "labels", label)), dtype=np.int64)


def _detector_heads(io: ModelIO, items: list, shift: int) -> dict[str, np.ndarray]:
    """Raw heads whose decoded detections are each image's boxes (encoded against their nearest anchor), of
    their category plus ``shift`` (0: perfect; 1: every one of another class)."""
    from edgedeploy.tasks.detection.postprocess import BOX_ENCODINGS, CLASS_LOGITS, DetectionHead, box_iou

    head = DetectionHead.of(io)
    anchors = head.anchor_boxes
    encodings = np.zeros((len(items), len(anchors), 4), np.float32)
    logits = np.full((len(items), len(anchors), head.classes + 1), -10.0, np.float32)
    logits[:, :, 0] = 10.0
    for i, item in enumerate(items):
        boxes = item.label
        for (x, y, w, h), category in zip(boxes.boxes, boxes.categories):
            box = np.array([y / boxes.height, x / boxes.width, (y + h) / boxes.height, (x + w) / boxes.width])
            corners = np.stack([anchors[:, 0] - anchors[:, 2] / 2, anchors[:, 1] - anchors[:, 3] / 2,
                                anchors[:, 0] + anchors[:, 2] / 2, anchors[:, 1] + anchors[:, 3] / 2], 1)
            a = int(box_iou(box, corners).argmax())
            ya, xa, ha, wa = anchors[a]
            centre, size = (box[:2] + box[2:]) / 2, box[2:] - box[:2]
            encodings[i, a] = [10 * (centre[0] - ya) / ha, 10 * (centre[1] - xa) / wa, 5 * np.log(size[0] / ha),
                               5 * np.log(size[1] / wa)]
            logits[i, a, 0] = -10.0
            logits[i, a, 1 + (int(category) - 1 + shift) % head.classes] = 10.0
    return {BOX_ENCODINGS: encodings, CLASS_LOGITS: logits[:, :, 1:]}


def predictions(task: Task, items: list, num_classes: int, shift: int = 0) -> Outputs:
    """Scores in the layout the task's accumulator reads (runner.predict's: (N, classes), or (N, H, W, classes)
    for a dense output, or a detector's heads), whose argmax is each label's class plus ``shift`` (0: perfect;
    1: every one wrong). Ignored pixels are predicted as class 0 (they are not scored)."""
    if task.output_layout == "tensor":
        return _detector_heads(_io(task, num_classes), items, shift)
    rows = []
    for item in items:
        classes = _label_array(item.label)
        ignore = getattr(item.label, "ignore_index", None)
        if ignore is not None:
            classes = np.where(classes == ignore, 0, classes)
        if task.output_layout is None:
            assert classes.ndim == 0, f"{task.name}: a per-image output but a {classes.shape} label"
        rows.append(np.eye(num_classes, dtype=np.float32)[(classes + shift) % num_classes] * 10.0)
    return np.stack(rows)


def _scored(task: Task, items: list, scores: Outputs, reference: Outputs | None = None):
    acc = task.accumulator().bind(_io(task, _classes(scores)))
    acc.update(scores, items, reference)
    return acc


def _classes(scores: Outputs) -> int:
    return int(list(scores.values())[-1].shape[-1]) if isinstance(scores, dict) else int(scores.shape[-1])


@pytest.mark.parametrize("name", list(TASKS))
def test_its_own_data_set_opens_with_the_labels_written(name, layouts):
    task = get_task(name)
    written = own_data(task, layouts)
    dataset = task.open_dataset(written.path, written.options)
    assert dataset.labeled and len(dataset) == len(written.truth)
    items = list(dataset)
    assert not dataset.skipped
    for item in items:
        assert np.array_equal(_label_array(item.label), written.truth[item.path.stem]), item.path
    # The images alone are any task's: parity and diagnose read them without labels.
    assert not dataset.unlabeled().labeled and len(dataset.unlabeled()) == len(dataset)


@pytest.mark.parametrize("name", list(TASKS))
def test_another_tasks_data_set_or_option_is_refused(name, layouts):
    task = get_task(name)
    refused = 0
    for written in layouts.values():
        if any(t.layout_match(written.path) > task.layout_match(written.path) for t in task_rows()):
            with pytest.raises(ConfigError, match=f"but the model is a {name} model"):
                task.open_dataset(written.path)
            refused += 1
    if len(task_rows()) > 1 and not refused:
        pytest.skip(f"no synthetic data set in another task's layout that {name} would misread")
    for option, value in OPTION_VALUES.items():
        if option not in task.data_format_fields:
            with pytest.raises(ConfigError, match=f"{option} does not apply to {name} data"):
                task.open_dataset(own_data(task, layouts).path, DataFormat(**{option: value}))
    assert set(task.data_format_fields) <= {f.name for f in dataclasses.fields(DataFormat)}


@pytest.mark.parametrize("name", list(TASKS))
def test_perfect_predictions_score_100_and_wrong_ones_less(name, layouts):
    task = get_task(name)
    written = own_data(task, layouts)
    items = list(task.open_dataset(written.path, written.options))
    perfect = _scored(task, items, predictions(task, items, written.num_classes)).result(0, 0.0, False)
    wrong = _scored(task, items, predictions(task, items, written.num_classes, shift=1)).result(0, 0.0, False)
    assert perfect.n == wrong.n == len(items)
    assert task.metric in perfect.metrics and getattr(perfect, task.metric) == perfect.metrics[task.metric]
    assert perfect.metrics[task.metric] == 100.0
    assert wrong.metrics[task.metric] is not None and wrong.metrics[task.metric] < 100.0
    # Without a reference there is no agreement to report.
    assert perfect.agreement is None


@pytest.mark.parametrize("name", list(TASKS))
def test_a_model_agrees_fully_with_itself_and_less_with_another(name, layouts):
    task = get_task(name)
    written = own_data(task, layouts)
    items = list(task.open_dataset(written.path, written.options))
    scores = predictions(task, items, written.num_classes)
    same = _scored(task, items, scores, reference=map_outputs(scores, np.copy)).result(0, 0.0, True)
    assert same.agreement == 100.0 and same.max_abs_diff == 0.0 and same.mean_abs_diff == 0.0
    other = _scored(task, items, predictions(task, items, written.num_classes, shift=1), reference=scores)
    assert other.result(0, 0.0, True).agreement < 100.0
    interval = task.agreement_interval(_scored(task, items, scores, reference=scores).records(), 0.95)
    assert interval is not None and interval.estimate == 100.0
    assert isinstance(task.agreement_label, str) and task.agreement_label


@pytest.mark.parametrize("name", list(TASKS))
def test_shards_merge_and_saved_sums_reload_exactly(name, layouts):
    task = get_task(name)
    written = own_data(task, layouts)
    items = list(task.open_dataset(written.path, written.options))
    right, wrong = (predictions(task, items, written.num_classes, shift) for shift in (0, 1))
    # Half right, half wrong, image by image.
    scores = concat_outputs([take_rows(wrong if i % 2 else right, i, i + 1) for i in range(len(items))])
    reference = predictions(task, items, written.num_classes)
    whole = _scored(task, items, scores, reference)
    half = len(items) // 2
    merged = _scored(task, items[:half], take_rows(scores, 0, half), take_rows(reference, 0, half))
    merged.merge(_scored(task, items[half:], take_rows(scores, half, len(items)),
                         take_rows(reference, half, len(items))))
    reloaded = task.accumulator().bind(_io(task, _classes(scores))).load(whole.sums(), whole.records())
    expected = whole.result(0, 0.0, True).to_dict()
    assert 0.0 < expected[task.metric] < 100.0
    for acc in (merged, reloaded):
        got = acc.result(0, 0.0, True).to_dict()
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            # Counts and the figures made of them are exact; float sums (e.g. KL) are added in another order.
            assert got[key] == (pytest.approx(value, rel=1e-6) if isinstance(value, float) else value), key
        records = acc.records()
        assert records.keys() == whole.records().keys()
        assert all(np.array_equal(records[k], v) for k, v in whole.records().items())


@pytest.mark.parametrize("name", list(TASKS))
def test_the_paired_comparison_sees_the_drop_on_the_same_labels(name, layouts):
    task = get_task(name)
    written = own_data(task, layouts)
    items = list(task.open_dataset(written.path, written.options))
    right = _scored(task, items, predictions(task, items, written.num_classes)).records()
    wrong = _scored(task, items, predictions(task, items, written.num_classes, shift=1)).records()
    # The ground-truth records are each evaluation's own, and equal for every model on the same images.
    assert set(task.label_records) <= right.keys() and task.same_labels(right, wrong)
    paired = task.paired(right, wrong, 0.95)
    assert paired is not None and paired.n == len(items)
    assert paired.drop.estimate > 0 and paired.lost > 0 and paired.gained == 0
    unchanged = task.paired(right, right, 0.95)
    assert unchanged.drop.estimate == 0 and unchanged.lost == unchanged.gained == 0


@pytest.mark.parametrize("name", list(TASKS))
def test_the_gate_thresholds_are_named_after_the_metric(name):
    task = get_task(name)
    assert (task.drop_threshold, task.regression_threshold) == (f"max_{task.metric}_drop",
                                                                f"max_{task.metric}_regression")
    limits = Thresholds.model_validate({task.drop_threshold: 1.5, task.regression_threshold: 0.5})
    assert task.drop_threshold in limits.metric_keys() or task.drop_threshold in Thresholds.model_fields
    assert limits.drop_limit(task) == 1.5
    with pytest.raises(ValueError, match=task.drop_threshold):
        Thresholds.model_validate({task.drop_threshold: 101})
    # Another metric's name is refused (a metric no task has).
    with pytest.raises(ValueError, match="unknown key 'max_no_such_metric_drop'"):
        Thresholds.model_validate({"max_no_such_metric_drop": 1.0})


@pytest.mark.parametrize("name", list(TASKS))
def test_the_regression_threshold_is_read_for_the_gate(name):
    task = get_task(name)
    limits = Thresholds.model_validate({task.regression_threshold: 2.0})
    assert limits.regression_limit(task) == 2.0
