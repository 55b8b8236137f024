"""The content-addressed caches' keys: the code fingerprint covers the whole package, so a change in any layer
(a converter, a quantization method) invalidates cached builds and figures."""

import shutil

from edgedeploy.core.cache import PACKAGE, code_fingerprint, content_key


def test_the_code_fingerprint_covers_every_layer_of_the_package(tmp_path):
    copy = tmp_path / "edgedeploy"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    fingerprint = code_fingerprint.__wrapped__  # uncached: the same folder is read twice
    before = fingerprint(copy)
    assert before == fingerprint(PACKAGE)
    with (copy / "exporter" / "pipeline.py").open("a") as f:
        f.write("\n# changed\n")
    assert fingerprint(copy) != before


def test_content_keys_are_stable_and_order_independent_for_dicts():
    assert content_key({"a": 1, "b": 2}, [1]) == content_key({"b": 2, "a": 1}, [1]) != content_key({"a": 1}, [1])
