"""What a PyTorch user reaches for and chainrule spells another way.

A network has no modes to switch, no ``parameters()`` generator and no gradients to
zero; an optimizer has no parameter groups. Where ``torch.nn.Module`` or
``torch.optim.Optimizer`` has such a name, the ``AttributeError`` says what chainrule
does instead, and a PyTorch ``state_dict`` handed to ``load_state_dict`` is pointed to
``chainrule.io.from_torch``. The names are looked up only once the normal lookup has
failed, so nothing else pays for them.
"""

from __future__ import annotations

__all__ = ["TorchNetworkHints", "TorchOptimizerHints", "state_dict_keys_message"]

_MODE = ("a network has no mode to switch: forward(X) runs in evaluation mode, "
         "forward(X, training=True) in training mode (Dropout on, batch statistics); fit and "
         "loss_and_grads train, predict and evaluate evaluate")
_PARAMS = ("the parameters are the dict model.params (name -> ndarray, updated in place): "
           "loss_and_grads(X, Y) returns their gradients by the same names and "
           "opt.step(model.params, grads) updates them, or cr.fit(model, X, Y, optimizer=opt)")
_NO_GRAD = ("gradients are not accumulated: loss_and_grads(X, Y) returns this step's, fresh "
            "at each call, so there is nothing to zero")
_GROUPS = ("an optimizer applies one setting to every parameter it steps; for two settings "
           "(e.g. no weight decay on the biases b1, b2, ...), step two optimizers, each over "
           "its own part of model.params (a dict of some of its names and arrays)")

NETWORK_HINTS = {
    "eval": _MODE, "train": _MODE, "training": _MODE,
    "parameters": _PARAMS, "named_parameters": _PARAMS, "zero_grad": _NO_GRAD,
    "to": "a network has one dtype, chosen when it is built (dtype=np.float32), and runs "
          "on the CPU with NumPy",
    "cuda": "chainrule runs on the CPU with NumPy", "cpu": "chainrule runs on the CPU with NumPy",
    "modules": "model.layers lists the (layer, parameter names) pairs, in order",
    "children": "model.layers lists the (layer, parameter names) pairs, in order",
}
OPTIMIZER_HINTS = {"zero_grad": _NO_GRAD, "param_groups": _GROUPS, "add_param_group": _GROUPS}


class _Hints:
    """``__getattr__`` that adds a hint to the ``AttributeError`` of a PyTorch name."""

    _torch_hints: dict = {}

    def __getattr__(self, name):
        hint = self._torch_hints.get(name)
        message = f"{type(self).__name__!r} object has no attribute {name!r}"
        raise AttributeError(message if hint is None else f"{message}: {hint}",
                             name=name, obj=self)


class TorchNetworkHints(_Hints):
    """Base of :class:`~chainrule.network.Network`: ``torch.nn.Module``'s names."""

    _torch_hints = NETWORK_HINTS


class TorchOptimizerHints(_Hints):
    """Base of :class:`~chainrule.optim_base.Optimizer`: ``torch.optim``'s names."""

    _torch_hints = OPTIMIZER_HINTS


def state_dict_keys_message(missing, unexpected) -> str:
    """The error of a strict ``load_state_dict`` whose keys differ; chainrule's names
    have no dots, so dotted ones (``0.weight``) come from a PyTorch module."""
    message = (f"state_dict has missing keys {missing} and unexpected keys {unexpected} "
               f"(strict=False loads the keys both have)")
    if any("." in str(k) for k in unexpected):
        message += ("; the dotted names are a PyTorch module's: cr.io.from_torch(module) "
                    "builds the network from it, weights transposed to chainrule's (in, out)")
    return message
