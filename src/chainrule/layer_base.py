"""The base class of every layer: the switches a network sets and the checks all share.

The contract every layer keeps, from the homework:

* ``forward(inputs, *params)`` computes the output and caches exactly what
  ``backward`` needs;
* ``backward(d_out)`` returns ``d_inputs`` for a layer without parameters and
  ``(d_inputs, *d_params)`` for a layer with parameters, in the order the
  parameters were passed to ``forward``.

It lives apart from :mod:`chainrule.layers` so that the layers can be split by kind
(:mod:`chainrule.activations`) below the module that re-exports them all.
"""

from __future__ import annotations

from ._validation import as_float_array, shape_str

__all__ = ["Layer"]


class Layer:
    """Base class: holds the switches and the checks shared by all layers.

    A subclass with parameters declares them for :class:`~chainrule.models.Sequential`:
    ``param_names`` (one name per array ``forward`` takes after the input, e.g.
    ``("W", "b")``) and ``init_params(rng, dtype)`` (those arrays, freshly drawn),
    with ``num_params = len(param_names)``; non-trainable state it keeps as attributes
    is named in ``buffer_names``. ``docs/custom_layers.md`` walks through one.
    """

    num_params = 0
    equations: tuple[str, tuple[str, ...]] = ("{y} = f({x})", ("d{x} = f'({x}) * d{y}",))
    training = True
    validate = True

    def __init__(self):
        self.cache = None

    def _check_input(self, inputs, name="inputs", ndim=None):
        if not self.validate:
            return inputs
        return as_float_array(inputs, name, ndim=ndim)

    def _check_d_out(self, d_out, expected_shape):
        if self.cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        if not self.validate:
            return d_out
        d_out = as_float_array(d_out, "d_out", ndim=None)
        if d_out.shape != tuple(expected_shape):
            raise ValueError(f"d_out must have shape {shape_str(expected_shape)} (the shape "
                             f"of this layer's output), got {shape_str(d_out.shape)}")
        return d_out

    def __repr__(self):
        return f"{type(self).__name__}()"
