import pytest

from edgedeploy.core.errors import DataError
from edgedeploy.data.datasets import ImageFolder, read_synsets


def test_class_index_is_the_synsets_line_number(val_dir, synsets):
    ds = ImageFolder.open(val_dir)
    assert ds.class_source.endswith("synsets.txt")
    assert len(ds) == 600
    index = read_synsets(synsets)
    assert len(index) == 1000 and index["n01440764"] == 0 and index["n15075141"] == 999
    first_dir = sorted(p.name for p in val_dir.iterdir())[0]
    assert ds.files[0][1] == index[first_dir]


def test_explicit_synsets_and_sorted_fallback(image_folder, synsets):
    with_synsets = ImageFolder.open(image_folder, synsets)
    assert sorted({label for _, label in with_synsets.files}) == [0, 281]
    fallback = ImageFolder.open(image_folder)  # tmp folder: no synsets.txt beside it
    assert fallback.class_source == "sorted folder names"
    assert sorted({label for _, label in fallback.files}) == [0, 1]


def test_non_image_and_corrupt_files_are_skipped_and_counted(image_folder, synsets):
    (image_folder / "n01440764" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    ds = ImageFolder.open(image_folder, synsets)
    assert len(ds) == 3 and len(ds.skipped) == 1  # notes.txt
    decoded = list(ds)
    assert len(decoded) == 2
    assert {p.name for p, _ in ds.skipped} == {"notes.txt", "broken.jpg"}


def test_flat_folder_is_unlabeled(tmp_path, data_root):
    import shutil

    shutil.copy(data_root / "images" / "cat.bmp", tmp_path / "cat.bmp")
    ds = ImageFolder.open(tmp_path)
    assert not ds.labeled and len(list(ds)) == 1


def test_folder_not_in_synsets_is_an_error(image_folder, synsets):
    (image_folder / "not_a_wnid").mkdir()
    with pytest.raises(DataError, match="'not_a_wnid' is not in"):
        ImageFolder.open(image_folder, synsets)


def test_missing_empty_and_imageless_folders(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        ImageFolder.open(tmp_path / "nope")
    with pytest.raises(DataError, match="no image files found"):
        ImageFolder.open(tmp_path)
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="no image files found"):
        ImageFolder.open(tmp_path)


def test_subset_first_n_and_seeded_sample(val_dir):
    ds = ImageFolder.open(val_dir)
    assert ds.subset(5).files == ds.files[:5]
    a, b = ds.subset(20, seed=1), ds.subset(20, seed=1)
    assert a.files == b.files and a.files != ds.files[:20]
