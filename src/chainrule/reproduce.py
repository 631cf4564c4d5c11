"""The homework's two experiments, run exactly as the homework ran them."""

from __future__ import annotations

from .functional import accuracy
from .homework import FeedforwardNeuralNet, LogisticRegression

__all__ = ["run_homework"]


def _train_and_log(model, X_train, Y_train, X_test, Y_test, epochs, report_every, out):
    for epoch in range(epochs):
        loss = model.step(X_train, Y_train)
        if epoch % report_every == 0:
            out(f"Epoch {epoch:4d}, loss = {loss:.4f}")
    acc = accuracy(Y_test, model.predict(X_test))
    out(f"test set accuracy = {acc:.3f}")
    return acc


def run_homework(out=print, epochs=501, report_every=50):
    """Run logistic regression, then the two-layer network, on the homework's split.

    Prints each training log (the loss before the step, every ``report_every``
    steps) and test accuracy through ``out``; returns the two accuracies.
    """
    from .data import load_homework_digits

    X_train, X_test, Y_train, Y_test = load_homework_digits()
    D, K = X_train.shape[1], Y_train.shape[1]
    out("Logistic regression")
    log_reg = LogisticRegression(num_features=D, num_classes=K, learning_rate=1e-2)
    acc_lr = _train_and_log(log_reg, X_train, Y_train, X_test, Y_test, epochs, report_every, out)
    # The homework draws the network's weights right after the split; the logistic
    # regression above draws nothing, so the global generator is where it was.
    out("Feed-forward neural network (H = 32)")
    X_train, X_test, Y_train, Y_test = load_homework_digits()
    net = FeedforwardNeuralNet(input_size=D, hidden_size=32, output_size=K, learning_rate=1e-2)
    acc_nn = _train_and_log(net, X_train, Y_train, X_test, Y_test, epochs, report_every, out)
    return acc_lr, acc_nn
