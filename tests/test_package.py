"""The package surface: a light import, and every advertised name resolves."""

import subprocess
import sys

import pytest

import chainrule


def test_import_chainrule_loads_only_numpy():
    # DESIGN principle 11: heavy dependencies are imported inside the functions using them.
    code = ("import sys, chainrule; "
            "print(sorted(m for m in ('sklearn', 'matplotlib', 'tqdm', 'onnx', 'onnxruntime', "
            "'torch', 'scipy', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_name_in_all_resolves():
    for name in chainrule.__all__:
        assert getattr(chainrule, name) is not None, name


def test_estimators_load_on_first_use():
    from chainrule.estimator import MLPClassifier, MLPRegressor

    assert chainrule.MLPClassifier is MLPClassifier
    assert chainrule.MLPRegressor is MLPRegressor


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        chainrule.no_such_thing  # noqa: B018 - the attribute access is what is tested


def test_training_and_file_modules_load_on_first_use():
    # issue 10: `import chainrule` loads the model classes, not the training loop, the
    # file formats or their standard-library modules (zipfile, tempfile, csv).
    # The interpreter's start-up (a site .pth file, numpy itself) may already hold some of
    # these; the test is about what `import chainrule` adds, so those are taken out.
    code = ("import sys, numpy; "
            "before = set(sys.modules); "
            "import chainrule; "
            "print(sorted(m for m in ('chainrule.train', 'chainrule.io', 'chainrule.data', "
            "'chainrule.checkpoint', 'zipfile', 'tempfile', 'csv') "
            "if m in sys.modules and m not in before)); "
            "from chainrule.train import fit; "
            "print(chainrule.fit is fit, chainrule.train.fit is fit, 'fit' in dir(chainrule))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True True True"]
