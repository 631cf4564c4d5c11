"""Tests of ``chainrule train`` (the command line front end of chainrule.train.fit)."""

import re

import numpy as np
import pytest

import chainrule.models
from chainrule.cli import main


def run(argv, capsys):
    """Run the command; return (exit status, stdout, stderr)."""
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own usage errors and --help
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def test_logreg_full_batch_sgd_prints_the_homework_losses(capsys):
    # The homework's logistic regression, through the command line: raw pixels, zero
    # weights, full-batch SGD at 1e-2; its losses at epochs 0 and 50 are 2.3026, 0.2275.
    status, out, err = run(["train", "--model", "logreg", "--optimizer", "sgd", "--lr",
                            "1e-2", "--lr-schedule", "constant", "--batch-size", "full",
                            "--epochs", "51", "--no-standardize", "--validation-fraction", "0",
                            "--weight-decay", "0"], capsys)
    assert status == 0, err
    lines = [line for line in out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 51
    assert lines[0].startswith("epoch    0  loss 2.3026")
    assert lines[50].startswith("epoch   50  loss 0.2275")
    assert re.search(r"^test accuracy = 0\.\d{4} \(\d+/450\)$", out, re.M)


def test_the_issue_example_runs_with_early_stopping(capsys):
    status, out, err = run(["train", "--model", "mlp", "--hidden", "32,16", "--optimizer",
                            "adam", "--lr", "1e-3", "--batch-size", "64", "--epochs", "4",
                            "--early-stopping", "5", "--dropout", "0"], capsys)
    assert status == 0, err
    epochs = [line for line in out.splitlines() if line.startswith("epoch")]
    assert len(epochs) == 4 and "val_loss" in epochs[0]
    assert "test accuracy = " in out and err == ""


def test_quiet_prints_no_epoch_lines(capsys):
    status, out, _ = run(["train", "--hidden", "8", "--epochs", "2", "--quiet"], capsys)
    assert status == 0
    assert not any(line.startswith("epoch") for line in out.splitlines())
    assert "test accuracy = " in out


@pytest.mark.parametrize("argv, message", [
    (["--lr", "-1"], "--lr must be a finite number > 0, got -1.0"),
    (["--lr", "abc"], "argument --lr: invalid float value: 'abc'"),
    (["--epochs", "0"], "argument --epochs: expected a positive integer, got '0'"),
    (["--hidden", "12,x"], "argument --hidden: expected comma-separated positive integers"),
    (["--hidden", "0"], "argument --hidden: expected comma-separated positive integers"),
    (["--batch-size", "0"], "argument --batch-size: expected a positive integer or 'full'"),
    (["--dropout", "1.5"], "--dropout must be in [0.0, 1.0), got 1.5"),
    (["--momentum", "0.9"], "--momentum applies to --optimizer sgd or rmsprop only"),
    (["--optimizer", "adagrad", "--momentum", "0.9"],
     "--momentum applies to --optimizer sgd or rmsprop only"),
    (["--optimizer", "adadelta"], "argument --optimizer: invalid choice: 'adadelta'"),
    (["--optimizer", "sgd", "--momentum", "1.5"], "--momentum must be in [0.0, 1.0], got 1.5"),
    (["--test-fraction", "1.5"], "--test-fraction must be in (0, 1), got 1.5"),
    (["--test-fraction", "0"], "--test-fraction must be in (0, 1), got 0.0"),
    (["--label-column", "y"], "--label-column applies to --data or --openml"),
    (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    (["--validation-fraction", "1.5"], "--validation-fraction must be in [0, 1), got 1.5"),
    (["--early-stopping", "3", "--validation-fraction", "0"],
     "--early-stopping needs --validation-fraction > 0"),
    (["--resume"], "--resume needs --checkpoint PATH"),
    (["--activation", "swish"], "argument --activation: invalid choice: 'swish'"),
    (["--init", "orthogonal"], "init"),
    (["--weight-decay", "-0.1"], "--weight-decay must be a finite number >= 0"),
    # Flags that would do nothing with the others given are refused, not ignored.
    (["--data", "a.csv", "--test-data", "b.csv", "--test-fraction", "0.5"],
     "--test-fraction applies without --test-data"),
    (["--channels", "8"], "--channels applies to --model cnn, not mlp"),
    (["--lr-patience", "2"], "--lr-patience applies to --lr-schedule plateau"),
    (["--lr-schedule", "plateau", "--lr-patience", "-1"], "--lr-patience must be >= 0, got -1"),
])
def test_bad_values_are_one_line_usage_errors(argv, message, capsys):
    status, out, err = run(["train", *argv], capsys)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("chainrule train: error: ")
    assert message in err


def test_help_lists_the_options(capsys):
    status, out, _ = run(["train", "--help"], capsys)
    assert status == 0
    for option in ("--hidden", "--early-stopping", "--no-standardize", "--checkpoint",
                   "--resume", "--validation-fraction", "--quiet", "--seed"):
        assert option in out


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes_the_run(tmp_path, capsys, monkeypatch):
    args = ["train", "--hidden", "16", "--epochs", "3", "--dropout", "0.2", "--seed", "4",
            "--batch-size", "64"]
    status, out, _ = run(args, capsys)
    assert status == 0
    expected = [line for line in out.splitlines() if line.startswith(("epoch", "test"))]

    forward = chainrule.models.Network.forward
    calls = {"n": 0}

    def interrupting_forward(self, X, training=False, *, checked=False):
        if training:
            calls["n"] += 1
            if calls["n"] == 30:  # inside epoch 1 (22 batches of 64 rows per epoch)
                raise KeyboardInterrupt
        return forward(self, X, training, checked=checked)

    ckpt = str(tmp_path / "run.npz")
    monkeypatch.setattr(chainrule.models.Network, "forward", interrupting_forward)
    status, out, err = run(args + ["--checkpoint", ckpt], capsys)
    assert status == 130
    assert "interrupted after 1 complete epochs; the state after them was saved to" in err
    assert "--resume" in err
    monkeypatch.setattr(chainrule.models.Network, "forward", forward)
    status, out, err = run(args + ["--checkpoint", ckpt, "--resume"], capsys)
    assert status == 0, err
    resumed = [line for line in out.splitlines() if line.startswith(("epoch", "test"))]
    # epoch 0 comes from the checkpoint; the resumed run prints epochs 1 and 2, whose
    # numbers (times aside) and the final accuracy equal the uninterrupted run's.
    strip = lambda lines: [re.sub(r"\s+[\d.]+s$", "", line) for line in lines]  # noqa: E731
    assert strip(resumed) == strip(expected[1:])


@pytest.mark.slow
def test_default_recipe_reaches_98_percent_on_the_homework_split(capsys):
    """The quality bar of issue 3, with the command's defaults (since issue 9: 128
    units, early stopping; about a second).

    Measured: 440/450 = 0.9778 with the default seed 0 (the old 1024-unit recipe gave
    441/450). Another CPU's BLAS kernel sums in another order, so one flipped row must
    not fail CI: the test allows 439/450."""
    status, out, err = run(["train", "--quiet"], capsys)
    assert status == 0, err
    acc = float(re.search(r"test accuracy = ([\d.]+)", out).group(1))
    assert acc >= 439 / 450


def test_adamw_weight_decay_zero_is_passed_through(capsys):
    # An explicit 0 must switch AdamW's decoupled decay off, not fall back to its 0.01.
    status, out, err = run(["train", "--optimizer", "adamw", "--weight-decay", "0",
                            "--hidden", "8", "--epochs", "1", "--quiet"], capsys)
    assert status == 0, err
    assert "AdamW(" in out and "weight_decay=0.0" in out
    status, out, err = run(["train", "--optimizer", "adamw", "--hidden", "8", "--epochs", "1",
                            "--quiet"], capsys)
    assert status == 0, err
    assert "weight_decay=0.01" in out


@pytest.mark.parametrize("argv, shown", [
    (["--optimizer", "rmsprop", "--momentum", "0.5", "--lr", "1e-3"],
     "RMSprop(lr=0.001, alpha=0.99, eps=1e-08, weight_decay=0.0001, momentum=0.5"),
    (["--optimizer", "adagrad", "--lr", "0.05"], "Adagrad(lr=0.05, lr_decay=0.0, "
                                                 "weight_decay=0.0001"),
])
def test_rmsprop_and_adagrad_train_from_the_command_line(argv, shown, capsys):
    status, out, err = run(["train", "--hidden", "16", "--epochs", "4", *argv], capsys)
    assert status == 0, err
    assert shown in out
    losses = [float(x) for x in re.findall(r"epoch +\d+ +loss ([\d.]+)", out)]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert float(re.search(r"test accuracy = ([\d.]+)", out).group(1)) > 0.9


def test_onecycle_schedule_rises_then_falls_over_the_run(capsys):
    from chainrule.schedules import onecycle_lr

    status, out, err = run(["train", "--hidden", "16", "--epochs", "6", "--lr", "0.01",
                            "--lr-schedule", "onecycle"], capsys)
    assert status == 0, err
    assert "lr=partial(onecycle_lr, max_lr=0.01, total_steps=114)" in out   # said once
    assert "onecycle schedule" not in out
    rates = [float(x) for x in re.findall(r"lr ([\d.e+-]+)", out)]
    assert len(rates) == 6 and max(rates) == rates[2] > 5 * rates[0] and rates[-1] < rates[3]
    # 1347 rows, 10% for validation: 1212 training rows, 19 steps an epoch, 114 in all;
    # each epoch logs the rate it started with.
    expected = [onecycle_lr(19 * e, max_lr=0.01, total_steps=114) for e in range(6)]
    np.testing.assert_allclose(rates, expected, rtol=5e-3)


def test_validation_fraction_leaving_no_training_rows_is_a_usage_error(capsys):
    status, out, err = run(["train", "--validation-fraction", "0.9999", "--epochs", "1"],
                           capsys)
    assert status == 2
    assert len(err.strip().splitlines()) == 1
    assert "--validation-fraction 0.9999" in err and "leaves none to train on" in err


@pytest.mark.parametrize("flag, value", [("--report-every", "0"), ("--report-every", "-1"),
                                         ("--epochs", "0"), ("--epochs", "-3")])
def test_reproduce_flags_must_be_positive(flag, value, capsys):
    status, out, err = run(["reproduce", flag, value], capsys)
    assert status == 2
    assert f"expected a positive integer, got '{value}'" in err
    assert out == ""


# -- second acceptance review --------------------------------------------------------------

def test_ctrl_c_after_an_epoch_line_says_that_epoch_was_discarded(tmp_path, capsys,
                                                                   monkeypatch):
    import chainrule.train

    write = chainrule.train.write_checkpoint
    calls = {"n": 0}

    def interrupted_write(*args, **kwargs):
        # The third epoch's line is printed by then (callbacks run before the commit);
        # Ctrl-C lands while its checkpoint is being written, so fit rolls it back.
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return write(*args, **kwargs)

    monkeypatch.setattr(chainrule.train, "write_checkpoint", interrupted_write)
    status, out, err = run(["train", "--hidden", "8", "--epochs", "5", "--checkpoint",
                            str(tmp_path / "ck.npz")], capsys)
    assert status == 130
    assert len([line for line in out.splitlines() if line.startswith("epoch")]) == 3
    assert err.count("\n") == 1
    assert "interrupted after 2 complete epochs (the line printed for epoch 2 does not " \
           "count" in err


def test_resume_with_fewer_epochs_or_a_damaged_checkpoint(tmp_path, capsys):
    from chainrule._fileformat import read_archive, write_archive

    ckpt = str(tmp_path / "ck.npz")
    args = ["train", "--hidden", "8", "--lr-schedule", "constant", "--quiet", "--checkpoint",
            ckpt]
    assert run(args + ["--epochs", "3"], capsys)[0] == 0
    status, out, err = run(args + ["--epochs", "2", "--resume"], capsys)
    assert status == 2 and err.count("\n") == 1
    assert "--epochs 2 is fewer than the 3 epochs already done" in err
    # With the cosine schedule, --epochs sets the schedule: the error says so.
    cosine = ["train", "--hidden", "8", "--quiet", "--lr-schedule", "cosine", "--checkpoint",
              str(tmp_path / "c.npz")]
    assert run(cosine + ["--epochs", "2"], capsys)[0] == 0
    status, out, err = run(cosine + ["--epochs", "4", "--resume"], capsys)
    assert status == 1 and err.count("\n") == 1
    assert "lr_schedule" in err and "resume with the --epochs of the interrupted run" in err
    args.append("--epochs=3")
    arrays, meta = read_archive(ckpt)
    del arrays["params/W2"]
    write_archive(ckpt, arrays, meta)  # a valid checksum, a missing array
    status, out, err = run(args + ["--resume"], capsys)
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("chainrule train: error: checkpoint ")
    assert "arrays ['params/W2'] are missing" in err


def test_train_leaves_the_parsed_flags_as_parsed(capsys):
    # The default validation fraction (0.1 with --early-stopping) is derived, not
    # written back into the namespace.
    from chainrule.cli import build_parser

    args = build_parser().parse_args(["train", "--hidden", "4", "--epochs", "1",
                                      "--early-stopping", "2", "--quiet"])
    before = dict(vars(args))
    assert args.func(args) == 0
    assert vars(args) == before and args.validation_fraction is None
    capsys.readouterr()


def _epoch_values(out, key):
    """The ``key`` column of train's epoch lines (e.g. 'val_loss', 'lr')."""
    return [float(re.search(rf" {key} (\S+)", line).group(1))
            for line in out.splitlines() if line.startswith("epoch")]


@pytest.mark.parametrize("patience, extra, monitor", [
    (1, [], "val_loss"), (0, [], "val_loss"),
    (2, ["--validation-fraction", "0"], "loss")])
def test_plateau_schedule_cuts_the_rate_as_torchs_scheduler(patience, extra, monitor, capsys):
    # The rates printed per epoch, against PyTorch's ReduceLROnPlateau fed the printed
    # monitored values: an oracle of its own for the counting (patience + 1 bad epochs,
    # the relative threshold, the factor).
    torch = pytest.importorskip("torch")
    status, out, err = run(["train", "--hidden", "16", "--lr", "0.05", "--epochs", "12",
                            "--lr-schedule", "plateau", "--lr-patience", str(patience),
                            "--early-stopping", "0", "-v", *extra], capsys)
    assert status == 0, err
    assert f"rate cut to 0.1x after {patience + 1} epochs without a better {monitor}" in out
    watched, rates = _epoch_values(out, monitor), _epoch_values(out, "lr")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=patience)
    expected = []
    for value in watched:
        expected.append(opt.param_groups[0]["lr"])
        sched.step(value)
    assert len(rates) == 12 and rates == pytest.approx(expected, rel=1e-2)
    assert min(rates) < 0.05   # a cut happened: the comparison is not vacuous


def test_plateau_resume_continues_the_run_and_refuses_another_patience(tmp_path, capsys):
    base = ["train", "--hidden", "16", "--lr", "0.05", "--lr-schedule", "plateau",
            "--lr-patience", "1", "-v"]
    status, whole, _ = run(base + ["--epochs", "10"], capsys)
    assert status == 0
    ckpt = ["--checkpoint", str(tmp_path / "ck.npz")]
    assert run(base + ckpt + ["--epochs", "4"], capsys)[0] == 0
    status, rest, _ = run(base + ckpt + ["--epochs", "10", "--resume"], capsys)
    assert status == 0
    # The resumed run replays the first four epochs into the schedule: same rates after.
    assert _epoch_values(rest, "lr") == _epoch_values(whole, "lr")[4:]
    assert min(_epoch_values(whole, "lr")) < 0.05
    status, _, err = run([*base[:-3], "--lr-patience", "3", *ckpt, "--epochs", "12",
                          "--resume", "-q"], capsys)
    assert status == 1 and err.count("\n") == 1
    assert "patience: 1 in the checkpoint, 3 now" in err and "--lr-patience" in err


def test_resume_without_a_flag_of_the_run_says_to_repeat_the_flags(tmp_path, capsys):
    # Without --lr-schedule plateau the checkpoint's schedule reads None against the
    # constant --lr: the error says which flags a resume takes.
    ckpt = tmp_path / "ck.npz"
    args = ["train", "--epochs", "2", "--checkpoint", str(ckpt), "-q"]
    status, _, err = run(args + ["--lr-schedule", "plateau"], capsys)
    assert status == 0, err
    status, _, err = run(["train", "--epochs", "4", "--checkpoint", str(ckpt), "--resume",
                          "-q"], capsys)
    assert status == 1
    assert "belongs to a different run" in err
    assert "resume with the flags of the interrupted run" in err
