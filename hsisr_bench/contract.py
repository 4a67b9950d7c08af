"""The method contract as code: what a registration and a built network must satisfy, checked here only.

A method is a factory registered with :func:`hsisr_bench.registry.register_method`:
``factory(*, bands, scale, **options) -> nn.Module``. The harness relies on:

- **input kind** (registration ``input``): ``"lr"``, the model gets the LR cube ``(B, L, h, w)``;
  ``"upsampled"``, it gets the MATLAB-bicubic upsampled LR ``(B, L, s*h, s*w)``; ``"lr+upsampled"``,
  ``forward(lr, upsampled)`` gets both (SSPSR-style ``forward(lr, lms)``; the output is as for
  ``"lr"``). The harness subtracts the training band mean from every input and adds it back after.
- **forward shape**: ``(B, L - 2b, s*h - 2p, s*w - 2p)`` float for an ``"lr"`` input ``(B, L, h, w)``,
  ``(B, L - 2b, H - 2p, W - 2p)`` for an ``"upsampled"`` one, where ``b, p`` is the **output crop**:
  the model's ``output_crop`` attribute (an :class:`~hsisr_bench.registry.OutputCrop`) when it has
  one, else the registration's. The harness crops the target the same way.
- **receptive field** (optional model attribute ``receptive_field``, an ``int``): the radius in input
  pixels of the input one output pixel depends on; tiled inference uses it as the tile margin, and
  probes the model when it is absent.
- **trainable**: ``False`` means no parameters; the harness does not train it.

:func:`validate_registration` checks a registration (the registry calls it), :func:`contract_of`
reads a built model's contract, :func:`check_model_output` checks one forward pass cheaply (for
the engine), and :func:`check_method` runs the registry-wide behavioural checks on one method
(``hsibench check-method`` and ``tests/test_method_contract.py``).
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence, runtime_checkable

import torch
import torch.nn as nn

from hsisr_bench.errors import MethodError
from hsisr_bench.registry import (
    MethodInfo,
    OutputCrop,
    count_parameters,
    create_method,
    get_method_info,
    resolve_options,
)

__all__ = ["INPUT_KINDS", "CHECKS", "SuperResolutionModel", "Contract", "CheckResult", "validate_registration",
           "contract_of", "expected_output_shape", "model_input", "model_inputs", "check_model_output",
           "preflight_model", "check_method", "failures", "partial_tiles"]

#: The input kinds a method may declare.
INPUT_KINDS = ("lr", "upsampled", "lr+upsampled")
#: The checks of :func:`check_method`, in the order they run.
CHECKS = ("build", "shape", "finite", "backward", "fit", "determinism", "tiled", "parameters")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@runtime_checkable
class SuperResolutionModel(Protocol):
    """What the harness calls: a module mapping the input batch to the SR batch (see the module docstring).

    Optional attributes the harness reads when present: ``output_crop`` (:class:`OutputCrop`) and
    ``receptive_field`` (``int``, input pixels).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, h, w)`` (or upsampled ``(B, L, H, W)``) -> ``(B, L', H', W')``."""
        ...


@dataclass(frozen=True)
class Contract:
    """A built model's contract: its registration's metadata with the model's own attributes over it.

    Attributes:
        input: ``"lr"`` or ``"upsampled"``.
        output_crop: what the output loses on each side.
        receptive_field: the declared radius in input pixels, or ``None`` (the engine probes it).
        trainable: whether the harness trains it.
    """

    input: str
    output_crop: OutputCrop
    receptive_field: Optional[int]
    trainable: bool


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check of :func:`check_method`.

    Attributes:
        check: one of :data:`CHECKS`.
        scale: the scale it ran at.
        status: ``"pass"``, ``"fail"`` or ``"skip"``.
        detail: what was measured, what failed, or why it was skipped.
        data: numbers behind the outcome (the tiled check's input shapes, tile, radius...).
    """

    check: str
    scale: int
    status: str
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True unless the check failed (a skipped check is not a failure)."""
        return self.status != "fail"


# ------------------------------------------------------------------------------ registration


def validate_registration(name: str, factory: Callable[..., nn.Module], *, title: Any = None,
                          **metadata: Any) -> list[str]:
    """Problems with a registration (empty when it satisfies the contract); the registry raises on any.

    Args:
        name: the registry name.
        factory: the decorated function.
        title, **metadata: the :class:`MethodInfo` fields given to ``register_method``.

    Returns:
        One message per problem, each saying what was expected and what was found.
    """
    problems = []
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"the name must start with a letter and use only letters, digits, '_' and '-' (the "
                        f"command line splits on ',' and '+'), got {name!r}")
    if not callable(factory):
        return problems + [f"the decorated object must be a function, got {type(factory).__name__}"]
    if not isinstance(title, str) or not title.strip():
        problems.append(f"title must be a non-empty string, got {title!r}")
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    has_kwargs = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
    for required in ("bands", "scale"):
        p = parameters.get(required)
        if not has_kwargs and (p is None or p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)):
            problems.append(f"the factory must accept the keyword argument '{required}' "
                            f"(def build(*, bands, scale, ...)), found ({', '.join(parameters) or 'no arguments'})")
    options = {p.name for p in parameters.values() if p.kind == p.KEYWORD_ONLY} - {"bands", "scale"}
    value = metadata.get("input", "lr")
    if value not in INPUT_KINDS:
        problems.append(f"input must be one of {', '.join(map(repr, INPUT_KINDS))}, got {value!r}")
    multiple = metadata.get("size_multiple", 1)
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        problems.append(f"size_multiple must be an integer >= 1 (input sides must be multiples of it), got {multiple!r}")
    crop = metadata.get("output_crop", OutputCrop())
    if not isinstance(crop, OutputCrop) or min(crop.bands, crop.pixels) < 0:
        problems.append(f"output_crop must be an OutputCrop(bands>=0, pixels>=0), got {crop!r}")
    if not isinstance(metadata.get("trainable", True), bool):
        problems.append(f"trainable must be True or False, got {metadata['trainable']!r}")
    if not isinstance(metadata.get("loss", "l1"), str):
        problems.append(f"loss must be a loss name (str), got {metadata['loss']!r}")
    if not isinstance(metadata.get("optimizer", {}), Mapping):
        problems.append(f"optimizer must be a mapping like {{'name': 'adam', 'lr': 1e-4}}, got {metadata['optimizer']!r}")
    variants = metadata.get("variants", {})
    if not isinstance(variants, Mapping) or not all(isinstance(v, Mapping) for v in variants.values()):
        problems.append(f"variants must map names to option mappings, got {variants!r}")
        variants = {}
    for variant, values in variants.items():
        unknown = [key for key in values if key not in options and not has_kwargs]
        if unknown:
            problems.append(f"variant '{variant}' sets {', '.join(unknown)}, which the factory does not take as "
                            f"keyword-only options ({', '.join(sorted(options)) or 'none'})")
    descriptions = metadata.get("variant_descriptions", {})
    extra = [v for v in descriptions if v not in variants] if isinstance(descriptions, Mapping) else ["?"]
    if extra:
        problems.append(f"variant_descriptions names unknown variants {extra} (variants: {list(variants)})")
    counts = metadata.get("param_counts", {})
    for key, count in (counts.items() if isinstance(counts, Mapping) else [("?", None)]):
        if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], int)
                and (key[1] == "default" or key[1] in variants)) or not isinstance(count, int):
            problems.append(f"param_counts keys must be (scale, 'default' or a variant) with integer counts, "
                            f"got {key!r}: {count!r}")
            break
    return problems


# ------------------------------------------------------------------------------ a built model


def contract_of(model: nn.Module, info: MethodInfo) -> Contract:
    """The contract of a built ``model`` of method ``info``: model attributes override the registration.

    Raises:
        MethodError: ``output_crop`` or ``receptive_field`` attributes of the wrong type.
    """
    crop = getattr(model, "output_crop", info.output_crop)
    if not isinstance(crop, OutputCrop) or min(crop.bands, crop.pixels) < 0:
        raise MethodError(f"Method '{info.name}' ({info.source}): model.output_crop must be an "
                          f"OutputCrop(bands>=0, pixels>=0), got {crop!r}.")
    radius = getattr(model, "receptive_field", None)
    if radius is not None and (isinstance(radius, bool) or not isinstance(radius, int) or radius < 0):
        raise MethodError(f"Method '{info.name}' ({info.source}): model.receptive_field must be an int >= 0 "
                          f"(input pixels), got {radius!r}; remove it to have the engine probe the model.")
    return Contract(input=info.input, output_crop=crop, receptive_field=radius, trainable=info.trainable)


def model_input(info: MethodInfo, lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The model's (first) input for an LR batch ``(B, L, h, w)``: itself, or its MATLAB-bicubic upsampling."""
    if info.input == "upsampled":
        from hsisr_bench.data.imresize import imresize

        return imresize(lr, scale)  # (B, L, h, w) -> (B, L, s*h, s*w)
    return lr


def model_inputs(info: MethodInfo, lr: torch.Tensor, scale: int) -> tuple[torch.Tensor, ...]:
    """Every argument of the model's forward for an LR batch: ``(lr,)``, ``(upsampled,)`` or ``(lr, upsampled)``."""
    if info.input == "lr+upsampled":
        from hsisr_bench.data.imresize import imresize

        return lr, imresize(lr, scale)  # the second (B, L, s*h, s*w)
    return (model_input(info, lr, scale),)


def expected_output_shape(contract: Contract, input_shape: Sequence[int], scale: int) -> tuple[int, ...]:
    """The output shape the contract promises for a model input of ``input_shape`` ``(B, L, h, w)``."""
    batch, bands, h, w = input_shape
    factor = 1 if contract.input == "upsampled" else scale  # "lr+upsampled": the shape of the LR input
    b, p = contract.output_crop.bands, contract.output_crop.pixels
    return (batch, bands - 2 * b, factor * h - 2 * p, factor * w - 2 * p)


def check_model_output(model: nn.Module, info: MethodInfo, x: torch.Tensor, out: Any, *, scale: int,
                       finite: bool = True) -> None:
    """Check one forward pass ``out = model(x)`` against the contract (cheap: shapes, dtype, finiteness).

    Args:
        model: the network (its ``output_crop`` attribute counts).
        info: the method's registration.
        x: the model's input batch ``(B, L, h, w)`` (upsampled for ``"upsampled"`` methods).
        out: what the model returned.
        scale: the upscaling factor.
        finite: also require every output value to be finite (one reduction over ``out``).

    Raises:
        MethodError: naming the method and where it came from, with the expected and found shape.
    """
    contract = contract_of(model, info)
    where = f"Method '{info.name}' ({info.source})"
    if not isinstance(out, torch.Tensor):
        raise MethodError(f"{where}: forward must return one tensor, got {type(out).__name__}.")
    expected = expected_output_shape(contract, tuple(x.shape), scale)
    if tuple(out.shape) != expected:
        raise MethodError(f"{where}: forward returned shape {tuple(out.shape)} for an input of {tuple(x.shape)} at "
                          f"x{scale}, expected {expected} (input {contract.input!r}, output crop "
                          f"{contract.output_crop}). Fix forward, or declare output_crop / input in the "
                          "registration.")
    if not out.is_floating_point():
        raise MethodError(f"{where}: forward returned dtype {out.dtype}, expected a floating-point tensor.")
    if finite and not bool(torch.isfinite(out).all()):
        raise MethodError(f"{where}: forward returned NaN or Inf for a finite input at x{scale}.")


def preflight_model(model: nn.Module, info: MethodInfo, *, bands: int, scale: int, size: int = 8) -> None:
    """One small no-grad forward pass checked by :func:`check_model_output`, before any training or scoring.

    The input is ``(1, bands, n, n)`` LR pixels (``n >= size``, enough for the output crop), drawn
    from a private generator in eval mode, so neither the global RNG nor the model's state changes.

    Raises:
        MethodError: the forward fails or breaks the contract, naming the method and its source.
    """
    contract = contract_of(model, info)
    n = max(size, math.ceil(2 * contract.output_crop.pixels / scale) + 4)
    lr = torch.rand(1, bands, n, n, generator=torch.Generator().manual_seed(0))
    from hsisr_bench.engine.infer import pad_to_multiple, size_multiple_of

    # The harness pads every input to the model's size_multiple: check the model on what it will get
    # (an "lr+upsampled" method's second input to multiple * scale, see forward_padded).
    multiple = size_multiple_of(model, info)
    inputs = [pad_to_multiple(t, multiple * (scale if i else 1)) for i, t in enumerate(model_inputs(info, lr, scale))]
    x = inputs[0]
    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with torch.no_grad():
            out = model.eval()(*(t.to(device) for t in inputs))
    except Exception as error:  # noqa: BLE001 - any failure of a method's forward is the method's
        raise MethodError(f"Method '{info.name}' ({info.source}): forward failed on an input of "
                          f"{tuple(x.shape)} at x{scale}: {type(error).__name__}: {error}") from error
    finally:
        model.train(was_training)
    check_model_output(model, info, x, out, scale=scale)


# ------------------------------------------------------------------------------ behavioural checks


def _batch(bands: int, scale: int, lr_shape: Sequence[int], batch: int, seed: int = 1):
    """A fixed (LR, HR) pair: HR uniform in [0, 1], LR its MATLAB-bicubic downscale."""
    from hsisr_bench.data.imresize import imresize

    generator = torch.Generator().manual_seed(seed)
    h, w = lr_shape
    hr = torch.rand(batch, bands, h * scale, w * scale, generator=generator)
    return imresize(hr, 1 / scale), hr


def _build(name: str, bands: int, scale: int, options: Mapping[str, Any], seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return create_method(name, bands=bands, scale=scale, **options)


def harness_forward(model: nn.Module, info: MethodInfo, x, scale: int) -> torch.Tensor:
    """``model(x)`` as the harness calls it: padded to the model's ``size_multiple``, the output cropped back.

    ``x`` is the input tensor, or the tuple of :func:`model_inputs` (two for ``"lr+upsampled"``).
    """
    from hsisr_bench.engine.infer import forward_padded, size_multiple_of

    inputs = x if isinstance(x, tuple) else (x,)
    return forward_padded(model, inputs[0], multiple=size_multiple_of(model, info),
                          factor=1 if info.input == "upsampled" else scale,
                          crop=contract_of(model, info).output_crop.pixels,
                          upsampled=inputs[1] if len(inputs) > 1 else None)


def _check_backward_and_fit(model: nn.Module, info: MethodInfo, x: torch.Tensor, target: torch.Tensor,
                            scale: int):
    """(backward, fit) outcomes: every parameter gets a finite gradient; two Adam steps lower the loss."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(2):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(harness_forward(model, info, x, scale), target)
        loss.backward()
        if step == 0:
            missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
            broken = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
            if missing or broken:
                detail = (f"no gradient reaches {', '.join(missing[:4])}" if missing
                          else f"non-finite gradient in {', '.join(broken[:4])}")
                return ("fail", detail), ("skip", "not run: backward failed")
        losses.append(loss.item())
        optimizer.step()
    with torch.no_grad():
        final = torch.nn.functional.mse_loss(harness_forward(model, info, x, scale), target).item()
    n = count_parameters(model)
    backward = ("pass", f"gradients reach all {n:,} parameters")
    if final < losses[0]:
        return backward, ("pass", f"MSE {losses[0]:.4g} -> {final:.4g} after two Adam steps (lr 1e-3)")
    return backward, ("fail", f"MSE {losses[0]:.4g} -> {final:.4g}: two Adam steps (lr 1e-3) on one batch did not "
                              "lower the loss")


def _tiling_plan(long: int, short: int, *, scale: int, contract: Contract, radius: int, tile: int,
                 multiple: int = 1):
    """The per-axis tile plans for an LR input ``(long, short)`` and core ``tile`` LR pixels."""
    from hsisr_bench.engine.infer import plan_axis

    per_lr = scale if contract.input == "upsampled" else 1  # input pixels per LR pixel
    factor = 1 if contract.input == "upsampled" else scale
    return [plan_axis(-(-n * per_lr // multiple) * multiple, factor=factor, crop=contract.output_crop.pixels,
                      radius=radius, core=tile * per_lr, multiple=multiple, n_keep=n * per_lr) for n in (long, short)]


def partial_tiles(plans) -> tuple[int, int]:
    """``(tiles, partial)``: how many tiles a per-axis plan makes, and how many read less than the whole input."""
    n_in = [max(t.in_stop for t in plan) for plan in plans]
    tiles = partial = 0
    for tile_h in plans[0]:
        for tile_w in plans[1]:
            tiles += 1
            spans = (tile_h.in_stop - tile_h.in_start, tile_w.in_stop - tile_w.in_start)
            partial += spans[0] < n_in[0] or spans[1] < n_in[1]
    return tiles, partial


def _check_tiled(model: nn.Module, info: MethodInfo, contract: Contract, *, bands: int, scale: int,
                 short: int) -> tuple[str, str, dict]:
    """Tiled inference equals untiled on inputs sized so that some tiles read only part of the image."""
    from hsisr_bench.engine.infer import probe_model, size_multiple_of, super_resolve

    crop = contract.output_crop.pixels
    multiple = size_multiple_of(model, info)
    radius = probe_model(model, bands=bands, scale=scale, input_kind=contract.input, crop=crop,
                         multiple=multiple).radius
    per_lr = scale if contract.input == "upsampled" else 1
    factor = 1 if contract.input == "upsampled" else scale
    margin_lr = math.ceil(max(radius, math.ceil(crop / factor)) / per_lr)
    # A core wider than the margin: two or three tiles along the long axis, not dozens; at least 2
    # pixels, so that the last core can be a truncated one.
    tile = max(2, margin_lr + 1)
    long = max(tile + margin_lr + 2, short + 1)  # the long axis is the one cut into partial tiles
    for _ in range(64):  # grow until the plan has a partial tile and a truncated last core
        plans = _tiling_plan(long, short, scale=scale, contract=contract, radius=radius, tile=tile,
                             multiple=multiple)
        tiles, partial = partial_tiles(plans)
        truncated = (plans[0][-1].out_stop - plans[0][-1].out_start) < plans[0][0].out_stop - plans[0][0].out_start
        if tiles > 1 and partial and truncated:
            break
        long += 1
    else:
        return "fail", f"found no input size with partial tiles (tile {tile}, margin {radius})", {}
    mean = torch.linspace(0.2, 0.6, bands)
    generator = torch.Generator().manual_seed(2)
    cases, worst = [], 0.0
    for shape in ((long, short), (short, long)):
        lr = torch.rand(1, bands, *shape, generator=generator)
        untiled = super_resolve(model, lr, scale=scale, info=info, band_mean=mean, progress=False)
        tiled = super_resolve(model, lr, scale=scale, info=info, band_mean=mean, tile=tile, progress=False)
        diff = (tiled - untiled).abs().max().item() / max(1.0, untiled.abs().max().item())
        worst = max(worst, diff)
        cases.append({"lr_shape": shape, "tiles": tiles, "partial": partial})
    data = {"cases": cases, "tile": tile, "radius": radius, "input": contract.input, "crop": crop}
    summary = (f"LR {long}x{short} and {short}x{long}, tile {tile}: {tiles} tiles ({partial} partial), "
               f"margin {radius} input px, max diff {worst:.1e}")
    if worst <= 1e-5:
        return "pass", summary, data
    hint = "" if contract.receptive_field is None else (
        f"; the model declares receptive_field={contract.receptive_field}: is it too small?")
    return "fail", f"tiled differs from untiled: {summary}{hint}", data


def _check_parameters(info: MethodInfo, scale: int) -> tuple[str, str]:
    declared = {variant: count for (s, variant), count in info.param_counts.items() if s == scale}
    if not declared:
        return "skip", "no param_counts declared for this scale"
    wrong = []
    for variant, count in sorted(declared.items()):
        options = {} if variant == "default" else resolve_options(info.name, variant=variant)
        # Large networks are built on the meta device (shapes only, no memory); small ones on the CPU,
        # which is much faster to construct than meta for weight-normed layers (SSRNet).
        with torch.device("meta" if count > 5_000_000 else "cpu"), torch.no_grad():
            model = create_method(info.name, bands=31, scale=scale, **options)
        found = count_parameters(model)
        if found != count:
            wrong.append(f"{variant}: declared {count:,}, built {found:,}")
    if wrong:
        return "fail", "31 bands: " + "; ".join(wrong)
    return "pass", f"31 bands: {', '.join(f'{v} {c:,}' for v, c in sorted(declared.items()))}"


def _run(results: list, check: str, scale: int, func: Callable[[], tuple]) -> str:
    """Run one check, turning any exception into a failure that says what was raised, and where in the
    method's own code."""
    try:
        outcome = func()
    except Exception as error:  # noqa: BLE001 - a broken method must show up as a failed check
        from hsisr_bench.check_cell import describe_error  # lazy: check_cell imports this module

        outcome = ("fail", describe_error(error))
    status, detail, *data = outcome
    results.append(CheckResult(check, scale, status, detail, data[0] if data else {}))
    return status


def check_method(name: str, *, bands: int = 12, scales: Sequence[int] = (2, 3, 4), variant: Optional[str] = None,
                 options: Optional[Mapping[str, Any]] = None, lr_shape: Sequence[int] = (8, 7),
                 seed: int = 0) -> list[CheckResult]:
    """Run the contract checks on one registered method, at each scale.

    Checks (:data:`CHECKS`): ``build`` (the factory builds, the model's contract attributes are
    valid); ``shape`` (output shape with the output crop, float32); ``finite``; ``backward`` (every
    parameter gets a finite gradient; an untrainable method has no parameters); ``fit`` (two Adam
    steps lower the MSE on a fixed batch); ``determinism`` (same seed, same output; another seed,
    another init); ``tiled`` (tiled inference equals untiled on inputs where tiles read only part of
    the image); ``parameters`` (the declared ``param_counts`` at 31 bands).

    Args:
        name: the registry name.
        bands: spectral bands of the test inputs (12 keeps it fast; 3D-FCNN needs at least 9).
        scales: the scales to check.
        variant: a registered variant to check instead of the default options.
        options: explicit factory options over the variant's (tests use narrower networks).
        lr_shape: LR size ``(h, w)`` of the small checks (non-square, so swapped axes show up).
        seed: the seed of the builds.

    Returns:
        One :class:`CheckResult` per check and scale; a check that depends on a failed one is skipped.

    Raises:
        MethodError: unknown method, variant or option (nothing is run).
    """
    info = get_method_info(name)
    resolved = resolve_options(name, options, variant)
    results: list[CheckResult] = []
    for scale in scales:
        state: dict[str, Any] = {}

        def build():
            state["model"] = model = _build(name, bands, scale, resolved, seed)
            state["contract"] = contract = contract_of(model, info)
            n = count_parameters(model)
            rf = contract.receptive_field if contract.receptive_field is not None else "probed"
            return "pass", (f"{type(model).__name__}, {n:,} parameters, input {contract.input}, crop "
                            f"{contract.output_crop.bands} bands/{contract.output_crop.pixels} px, receptive field {rf}")

        if _run(results, "build", scale, build) == "fail":
            results += [CheckResult(c, scale, "skip", "not run: build failed") for c in CHECKS[1:-1]]
            _run(results, "parameters", scale, lambda: _check_parameters(info, scale))
            continue
        model, contract = state["model"], state["contract"]
        lr, hr = _batch(bands, scale, lr_shape, batch=2)
        inputs = model_inputs(info, lr, scale)  # (x,) or, for "lr+upsampled", (lr, upsampled)
        x, first = inputs[0], tuple(t[:1] for t in inputs)
        target = contract.output_crop.apply(hr)

        def shape():
            with torch.no_grad():
                state["out"] = out = harness_forward(model.eval(), info, inputs, scale)  # padded to size_multiple
            check_model_output(model, info, x, out, scale=scale, finite=False)
            if tuple(out.shape) != tuple(target.shape):
                return "fail", f"output {tuple(out.shape)}, cropped target {tuple(target.shape)}"
            if out.dtype != torch.float32:
                return "fail", f"output dtype {out.dtype}, expected torch.float32 for a float32 input"
            return "pass", f"{' + '.join(str(tuple(t.shape)) for t in inputs)} -> {tuple(out.shape)}"

        shape_ok = _run(results, "shape", scale, shape) == "pass"
        if shape_ok:
            _run(results, "finite", scale, lambda: ("pass", "all finite") if torch.isfinite(state["out"]).all()
                 else ("fail", f"{int((~torch.isfinite(state['out'])).sum())} NaN/Inf values"))
        else:
            results.append(CheckResult("finite", scale, "skip", "not run: shape failed"))
        if not info.trainable:
            n = count_parameters(model)
            results.append(CheckResult("backward", scale, "pass" if n == 0 else "fail",
                                       "not trainable, no parameters" if n == 0 else
                                       f"registered trainable=False but has {n:,} parameters"))
            results.append(CheckResult("fit", scale, "skip", "not trainable"))
        elif shape_ok:
            outcomes = {}

            def backward():
                outcomes["backward"], outcomes["fit"] = _check_backward_and_fit(model, info, first, target[:1], scale)
                return outcomes["backward"]

            _run(results, "backward", scale, backward)
            _run(results, "fit", scale, lambda: outcomes.get("fit", ("skip", "not run: backward failed")))
        else:
            results += [CheckResult(c, scale, "skip", "not run: shape failed") for c in ("backward", "fit")]

        def determinism():
            outs = []
            for s in (seed + 123, seed + 123, seed + 124):
                with torch.no_grad():
                    outs.append(harness_forward(_build(name, bands, scale, resolved, s).eval(), info, first, scale))
            if not torch.equal(outs[0], outs[1]):
                return "fail", "two builds with the same seed give different outputs (an unseeded generator?)"
            if info.trainable and torch.equal(outs[0], outs[2]):
                return "fail", "builds with different seeds give the same output: the init ignores torch's seed"
            return "pass", "same seed, same output" + (", other seed, other output" if info.trainable else "")

        _run(results, "determinism", scale, determinism)
        if shape_ok:
            _run(results, "tiled", scale, lambda: _check_tiled(model, info, contract, bands=bands, scale=scale,
                                                               short=min(lr_shape)))
        else:
            results.append(CheckResult("tiled", scale, "skip", "not run: shape failed"))
        _run(results, "parameters", scale, lambda: _check_parameters(info, scale))
    return results


def failures(results: Sequence[CheckResult]) -> list[CheckResult]:
    """The failed checks of a :func:`check_method` result."""
    return [r for r in results if r.status == "fail"]

