"""``hsibench export-testset``, ``hsibench score`` and ``hsibench export-weights``: results made elsewhere.

A method that runs outside the harness (MATLAB, another framework) gets the exact test inputs with
``export-testset``, and its outputs are scored with ``score`` into a normal run folder, so ``report``
and ``figures`` show it beside the trained methods. ``export-weights`` turns a trained run into a
small file to publish (see docs/external.md). The work is done in :mod:`hsisr_bench.external`.
"""

from __future__ import annotations

from pathlib import Path

import click

from hsisr_bench.plugins import plugin_option


def _cell_options(func):
    """The options that pick a test set: the same meaning as in ``hsibench run``."""
    options = [
        click.option("--dataset", required=True, help="One dataset: cave, harvard, foster, synthetic, generic."),
        click.option("--scale", required=True, type=int, help="One integer scale >= 2."),
        click.option("--profile", default="quick", show_default=True,
                     help="Protocol profile whose test region is used (paper and quick: 512; smoke: 32)."),
        click.option("--data-root", type=click.Path(path_type=Path), default=None,
                     help="Data root (else $HSIBENCH_DATA, else ./data). Not needed for the synthetic dataset."),
        click.option("--split-file", type=click.Path(path_type=Path), default=None,
                     help="A split JSON to use instead of the canonical or seeded split."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Config overrides as in 'hsibench run', e.g. --set dataset.n_scenes=4 or "
                          "--set metrics.sam_zero=exclude (repeatable)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _testset(dataset, scale, profile, data_root, split_file, overrides):
    from hsisr_bench.external import open_testset

    return open_testset(dataset, scale, profile=profile, data_root=data_root, split_file=split_file,
                        overrides=list(overrides))


@click.command("export-testset")
@_cell_options
@click.option("--to", "to", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the test set to (new or empty).")
@click.option("--force", is_flag=True, help="Write into a folder that already holds files.")
@plugin_option
def export_testset(dataset, scale, profile, data_root, split_file, overrides, to, force) -> None:
    """Write each test scene's HR region and LR input (.mat HR/LR H×W×L, .npy L×H×W) and a manifest."""
    from hsisr_bench.external import export_testset as export

    testset = _testset(dataset, scale, profile, data_root, split_file, overrides)
    manifest = export(testset, to, force=force, overrides=overrides)
    first = manifest["scenes"][0]
    click.echo(f"Wrote {len(manifest['scenes'])} test scene(s) of {dataset} x{scale} (profile {profile}) to {to}: "
               f"<scene>.mat (HR {'x'.join(map(str, first['hr_shape'][1:] + first['hr_shape'][:1]))}, LR), "
               f"<scene>_HR.npy, <scene>_LR.npy, manifest.json.")
    click.echo(f"Super-resolve each <scene> LR into <scene>.mat (variable SR), .npy or .h5, then: "
               f"{manifest['score_with']}")


@click.command("score")
@click.option("--pred", "pred_dir", required=True, type=click.Path(path_type=Path),
              help="Folder with one SR cube per test scene: <scene>.mat (SR or the only 3-D variable), .npy or .h5.")
@_cell_options
@click.option("--name", required=True, help="The method's name in tables and its run folder (not a registered "
                                            "method's name).")
@click.option("--title", default=None, help="Name shown in tables (default: --name).")
@click.option("--layout", default="auto", show_default=True, type=click.Choice(["auto", "hwl", "lhw"]),
              help="Axis order of the cubes: hwl (height, width, bands: MATLAB) or lhw (bands first); auto detects.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
              help="Results folder (as for 'hsibench run').")
@click.option("--force", is_flag=True, help="Replace an earlier scoring under this name with other predictions.")
@plugin_option
def score(pred_dir, dataset, scale, profile, data_root, split_file, overrides, name, title, layout, out,
          force) -> None:
    """Score SR cubes made by another program against the test set and store them as a run."""
    from hsisr_bench.external import score_predictions

    testset = _testset(dataset, scale, profile, data_root, split_file, overrides)
    outcome = score_predictions(testset, pred_dir, name, out, layout=layout, title=title, force=force,
                                notify=click.echo)
    mean = outcome.metrics["mean"]
    verb = "Already scored (same predictions)" if outcome.status == "skipped" else "Scored"
    click.echo(f"{verb}: {name} on {dataset} x{scale}, {outcome.metrics['n_test_scenes']} test scene(s): "
               f"PSNR {mean['psnr']:.2f} dB, SSIM {mean['ssim']:.4f}, SAM {mean['sam']:.2f} deg -> {outcome.directory}")
    click.echo(f"See it beside the other methods: hsibench report --results {out}")


@click.command("export-weights")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--to", "to", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The weights file to write (e.g. ssrnet_cave_x2.pt); the manifest entry goes to <stem>.json.")
@click.option("--force", is_flag=True, help="Replace existing files.")
@plugin_option
def export_weights(run_dir, to, force) -> None:
    """Export a trained run as a small weights file (state_dict, band mean, manifest) to publish."""
    from hsisr_bench.external import export_weights as export

    entry = export(run_dir, to, force=force)
    click.echo(f"Wrote {to} ({entry['bytes'] / 1e6:.1f} MB, sha256 {entry['sha256']}) and {to.with_suffix('.json')}: "
               f"{entry['method']}{'+' + entry['variant'] if entry.get('variant') else ''} trained on "
               f"{entry['dataset']} x{entry['scale']}.")
