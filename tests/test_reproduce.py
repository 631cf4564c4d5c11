"""`chainrule reproduce` prints the homework's table (logistic regression) and the
network values of DESIGN.md, digit for digit; the homework's data split."""

import subprocess
import sys

import numpy as np
import pytest

from chainrule.cli import main
from chainrule.data import load_homework_digits

# The logistic-regression log as printed in the homework (seed file, section 3.4).
HOMEWORK_LOGREG = """\
Epoch    0, loss = 2.3026
Epoch   50, loss = 0.2275
Epoch  100, loss = 0.1599
Epoch  150, loss = 0.1306
Epoch  200, loss = 0.1130
Epoch  250, loss = 0.1009
Epoch  300, loss = 0.0918
Epoch  350, loss = 0.0846
Epoch  400, loss = 0.0788
Epoch  450, loss = 0.0738
Epoch  500, loss = 0.0696
test set accuracy = 0.953"""

# The two-layer network under the protocol of DESIGN.md ("The homework protocol").
DESIGN_NETWORK = """\
Epoch    0, loss = 14.3029
Epoch   50, loss = 0.6182
Epoch  100, loss = 0.3360
Epoch  150, loss = 0.2343
Epoch  200, loss = 0.1798
Epoch  250, loss = 0.1454
Epoch  300, loss = 0.1221
Epoch  350, loss = 0.1052
Epoch  400, loss = 0.0921
Epoch  450, loss = 0.0818
Epoch  500, loss = 0.0734
test set accuracy = 0.947"""

EXPECTED = ["Logistic regression", *HOMEWORK_LOGREG.splitlines(),
            "Feed-forward neural network (H = 32)", *DESIGN_NETWORK.splitlines()]


def _check_log(text):
    lines = text.strip().splitlines()
    # Line by line, so a failure names the first line that differs.
    for i, (got, want) in enumerate(zip(lines, EXPECTED, strict=False)):
        assert got == want, f"line {i}: {got!r} != {want!r}"
    assert len(lines) == len(EXPECTED), lines


@pytest.mark.slow
def test_reproduce_prints_the_homework_tables(capsys):
    assert main(["reproduce"]) == 0
    _check_log(capsys.readouterr().out)


@pytest.mark.slow
def test_reproduce_as_a_command():
    # As a user runs it: a fresh interpreter with the module's command line.
    done = subprocess.run([sys.executable, "-m", "chainrule.cli", "reproduce"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    _check_log(done.stdout)


def test_reproduce_options(capsys):
    # Fewer steps, every step reported: the first two losses of each model.
    assert main(["reproduce", "--epochs", "2", "--report-every", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "Epoch    0, loss = 2.3026"
    assert lines[5] == "Epoch    0, loss = 14.3029"
    assert len(lines) == 8


def test_homework_split_shapes_and_dtypes():
    X_train, X_test, Y_train, Y_test = load_homework_digits()
    assert X_train.shape == (1347, 64) and X_test.shape == (450, 64)
    assert Y_train.shape == (1347, 10) and Y_test.shape == (450, 10)
    for a in (X_train, X_test, Y_train, Y_test):
        assert a.dtype == np.float64
    # Raw pixel values 0..16 and one-hot labels.
    assert X_train.min() == 0 and X_train.max() == 16
    assert np.all(np.isin(Y_train, [0.0, 1.0])) and np.all(Y_train.sum(axis=1) == 1)
    assert np.all(Y_test.sum(axis=1) == 1)


def test_homework_split_is_a_partition_of_digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X_train, X_test, Y_train, Y_test = load_homework_digits()
    both = np.vstack([X_train, X_test])
    labels = np.concatenate([Y_train.argmax(axis=1), Y_test.argmax(axis=1)])
    # Same multiset of (image, label) rows: sort both the same way and compare.
    ours = np.column_stack([both, labels])
    theirs = np.column_stack([X, y])
    ours = ours[np.lexsort(ours.T[::-1])]
    theirs = theirs[np.lexsort(theirs.T[::-1])]
    np.testing.assert_array_equal(ours, theirs)


def test_homework_split_is_deterministic():
    first = load_homework_digits()
    np.random.seed(0)            # whatever happened before, the split is the same
    second = load_homework_digits()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_global_rng_is_left_where_the_homework_left_it():
    # The homework's next draw after the split is xavier_init: the global generator
    # must be in the state np.random.seed(123) + train_test_split leaves it in.
    load_homework_digits()
    after_ours = np.random.get_state()
    from sklearn.model_selection import train_test_split

    np.random.seed(123)
    train_test_split(np.zeros((1797, 1)), np.zeros(1797), test_size=0.25)
    after_homework = np.random.get_state()
    np.testing.assert_array_equal(after_ours[1], after_homework[1])
    assert after_ours[2] == after_homework[2]
