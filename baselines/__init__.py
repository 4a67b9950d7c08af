"""The baselines of the SSRNet paper's comparison (PROTOCOL.md section 6), one module per method.

Each module builds its network and registers it with :func:`hsisr_bench.registry.register_method`;
the registry imports them lazily (``hsisr_bench.registry.BUILTIN_METHOD_MODULES``), so importing this
package does not register anything by itself.

- :mod:`hsisr_bench.baselines.bicubic`: MATLAB-style bicubic upsampling, no parameters.
- :mod:`hsisr_bench.baselines.gdrrn`: GDRRN (Li et al., BigMM 2018), on the upsampled cube.
- :mod:`hsisr_bench.baselines.fcnn3d`: 3D-FCNN (Mei et al., Remote Sensing 2017), valid 3D convolutions.
- :mod:`hsisr_bench.baselines.edsr`: EDSR (Lim et al., CVPRW 2017) with L input and output channels.

Every model carries two attributes the harness reads from the model rather than the registry:

- ``output_crop`` (an :class:`~hsisr_bench.registry.OutputCrop`): the bands and pixels its output
  loses on each side; one method may crop or not depending on an option (3D-FCNN ``padding``).
- ``receptive_field``: the radius, in input pixels (LR pixels for ``"lr"`` methods, upsampled
  pixels for ``"upsampled"`` ones), of the input that one output pixel depends on; tiled inference
  uses it as the tile margin (``hsisr_bench.engine.infer``; a model without it is probed there).
"""

from __future__ import annotations

from typing import Any, Iterable

from hsisr_bench.errors import MethodError, did_you_mean


def check_choice(method: str, option: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a did-you-mean :class:`MethodError`.

    Raises:
        MethodError: ``value`` is not one of ``choices``.
    """
    choices = list(choices)
    if value not in choices:
        raise MethodError(f"Method '{method}': invalid {option}={value!r}. {did_you_mean(str(value), choices)}")
    return value


def check_positive_int(method: str, option: str, value: Any) -> int:
    """Return ``value`` if it is an integer >= 1 (not a bool), else raise :class:`MethodError`.

    Raises:
        MethodError: ``value`` is not a positive integer.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise MethodError(f"Method '{method}': {option} must be a positive integer, got {value!r}.")
    return value
