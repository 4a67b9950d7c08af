"""Tests of the report tables (Table V, significance, efficiency, ablations) and ``hsibench report``."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import wilcoxon

from hsisr_bench.cli import main
from hsisr_bench.errors import ResultsError
from hsisr_bench.report import load_records
from hsisr_bench.report import published as pub
from hsisr_bench.report.tables import (
    ablation_table,
    build_report,
    experiment_records,
    higher_is_better,
    latex_escape,
    min_scenes_for,
    rank_styles,
    significance_table,
    summary_table,
    table_v,
    write_report,
)

from report_fixtures import FakeRun, paper_methods, write_fake_results


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """CAVE ×2 with the five methods (SSRNet with seeds 0 and 1), and CAVE ×4 with EDSR only."""
    root = tmp_path_factory.mktemp("results")
    write_fake_results(root, paper_methods() + [FakeRun("ssrnet", seed=1)], size=24)
    write_fake_results(root, [FakeRun("edsr")], scale=4, size=24, seed=3)
    return root


@pytest.fixture(scope="module")
def records(store):
    return load_records(store)


def _metrics(store: Path, scale: int, label: str, seed: int = 0) -> dict:
    return json.loads((store / "cave" / f"x{scale}" / label / f"seed{seed}" / "metrics.json").read_text())


def _md_row(markdown: str, first_cells: list[str]) -> list[str]:
    """The cells of the markdown table row whose first cells are ``first_cells``."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[: len(first_cells)] == first_cells:
            return cells
    raise AssertionError(f"no row starting with {first_cells}")


# ------------------------------------------------------------------------------------------ loading


def test_missing_and_empty_results_raise_with_where_and_how(tmp_path):
    with pytest.raises(ResultsError, match=r"does not exist.*hsibench run"):
        load_records(tmp_path / "nowhere")
    (tmp_path / "cave" / "x2" / "ssrnet" / "seed0").mkdir(parents=True)
    (tmp_path / "cave" / "x2" / "ssrnet" / "seed0" / "metrics.json").write_text('{"finished": false}')
    with pytest.raises(ResultsError, match=re.escape(str(tmp_path)) + r".*hsibench run"):
        load_records(tmp_path)


def test_records_carry_run_folder_and_paper_order(records, store):
    assert [r["method"] for r in records if r["scale"] == 2] == ["bicubic", "gdrrn", "fcnn3d", "edsr", "ssrnet", "ssrnet"]
    assert all(Path(r["_run_dir"]).is_dir() for r in records)
    assert Path(records[0]["_run_dir"]) == store / "cave" / "x2" / "bicubic" / "seed0"


# ------------------------------------------------------------------------------------------ Table V


def test_rank_styles_respects_direction_and_ties():
    assert higher_is_better("psnr") and higher_is_better("ssim") and not higher_is_better("sam")
    assert rank_styles({"a": 30.0, "b": 32.0, "c": 31.0}, "psnr") == {"a": None, "b": "best", "c": "second"}
    assert rank_styles({"a": 3.0, "b": 2.0, "c": 2.5}, "sam") == {"a": None, "b": "best", "c": "second"}
    # equal after rounding to 2 decimals -> tie for best; the next distinct value is second
    assert rank_styles({"a": 30.001, "b": 30.004, "c": 29.0}, "psnr") == {"a": "best", "b": "best", "c": "second"}
    assert rank_styles({"a": 30.0, "b": None}, "psnr") == {"a": None, "b": None}


def test_table_v_values_bold_and_published_difference(records, store):
    markdown = table_v(records, store, published=True).to_markdown()
    header = _md_row(markdown, ["Dataset"])
    assert header[3:] == ["Bicubic", "GDRRN", "3D-FCNN", "EDSR", "SSRNet"]  # paper order
    ours = _md_row(markdown, ["CAVE", "×2", "ours"])
    bicubic = _metrics(store, 2, "bicubic")["mean"]
    assert ours[3] == f"{bicubic['psnr']:.2f} / {bicubic['ssim']:.3f} / {bicubic['sam']:.2f}"
    # SSRNet (lowest noise) is best in all three metrics, EDSR second; SAM is lower-is-better
    s0, s1 = _metrics(store, 2, "ssrnet", 0)["mean"], _metrics(store, 2, "ssrnet", 1)["mean"]
    psnr_mean, psnr_std = np.mean([s0["psnr"], s1["psnr"]]), np.std([s0["psnr"], s1["psnr"]], ddof=1)
    assert ours[7].split(" / ")[0] == f"**{psnr_mean:.2f} ± {psnr_std:.2f}**"
    assert ours[7].split(" / ")[2].startswith("**") and ours[6].split(" / ")[2].startswith("<u>")
    assert ours[3].count("**") == 0 and "<u>" not in ours[3]
    paper = _md_row(markdown, ["", "", "paper"])
    assert paper[3] == "40.76 / 0.962 / 2.66"
    diff = _md_row(markdown, ["", "", "Δ"])
    expected = bicubic["psnr"] - 40.76
    assert diff[3].split(" / ")[0] == ("−" if expected < 0 else "+") + f"{abs(expected):.2f}"
    # ×4: only EDSR ran; the others are shown as not run, never filled in
    x4 = _md_row(markdown, ["CAVE", "×4", "ours"])
    assert x4[3:6] == ["—"] * 3 and x4[7] == "—" and x4[6] != "—"


def test_caption_states_protocol_conventions_scenes_seeds_and_crop(records, store):
    caption = table_v(records, store).full_caption
    for needle in ("Protocol: smoke", "PSNR: one MSE over the whole cube, peak 1", "SAM: mean angle over pixels in degrees",
                   "SSIM: per band, 11x11 Gaussian window", "Test scenes: 3 (CAVE)", "Seeds: 0, 1",
                   "3D-FCNN: scored on bands 5–27 of 31, 6-pixel border removed", pub.PAPER_REFERENCE):
        assert needle in caption


def test_csv_is_tidy_and_exact(records, store):
    rows = list(csv.DictReader(io.StringIO(table_v(records, store).to_csv())))
    row = next(r for r in rows if r["method"] == "fcnn3d" and r["metric"] == "sam" and r["scale"] == "2")
    assert float(row["mean"]) == pytest.approx(_metrics(store, 2, "fcnn3d")["mean"]["sam"], abs=1e-12)
    assert float(row["published"]) == 2.30
    assert float(row["diff"]) == pytest.approx(float(row["mean"]) - 2.30, abs=1e-12)
    ssrnet = next(r for r in rows if r["method"] == "ssrnet" and r["metric"] == "psnr" and r["scale"] == "2")
    assert ssrnet["n_seeds"] == "2" and ssrnet["rank"] == "1" and ssrnet["seeds"] == "0 1"
    not_run = next(r for r in rows if r["method"] == "ssrnet" and r["metric"] == "psnr" and r["scale"] == "4")
    assert not_run["mean"] == "" and float(not_run["published"]) == 38.94


def test_summary_table_shows_only_what_ran(records):
    text = summary_table(records, plain=False)
    header = _md_row(text, ["Dataset"])
    assert header[2:] == ["Bicubic", "GDRRN", "3D-FCNN", "EDSR", "SSRNet"]
    assert "paper" not in text.split("\n\n", 1)[1]
    assert summary_table([]) == "No finished run.\n"


def test_terminal_summary_is_plain_text_with_marks(records):
    """`hsibench run` prints summary_table(records): no markdown markup in a terminal; best *, second +."""
    text = summary_table(records)
    assert "**" not in text and "<u>" not in text and "|" not in text
    row = next(line for line in text.splitlines() if line.startswith("CAVE") and "×2" in line)
    # SSRNet (lowest noise) is best in every metric, EDSR second; the marks follow the values
    assert row.count("*") == 3 and row.count("+") == 3
    assert row.rstrip().endswith("*") and row.index("+") < row.index("*")
    assert "* best, + second" in text
    header = next(line for line in text.splitlines() if line.startswith("Dataset")).split()
    assert header[2:] == ["Bicubic", "GDRRN", "3D-FCNN", "EDSR", "SSRNet"]


def test_caption_warns_when_conventions_or_profiles_differ(tmp_path):
    write_fake_results(tmp_path, [FakeRun("edsr")], size=16, bands=8)
    write_fake_results(tmp_path, [FakeRun("ssrnet")], size=16, bands=8, scale=3, protocol="paper",
                       conventions={"psnr_reduction": "band", "data_range": 1.0, "ssim_window": "uniform",
                                    "sam_zero": "exclude", "sam_unit": "rad"})
    caption = table_v(load_records(tmp_path), tmp_path).full_caption
    assert "Protocol: paper, smoke (mixed profiles!)" in caption
    assert "differ between runs" in caption and "mean of per-band PSNRs" in caption and "radians" in caption


# ------------------------------------------------------------------------------------------ significance


def test_wilcoxon_needs_enough_scenes(tmp_path, records):
    assert min_scenes_for(0.05) == 6 and min_scenes_for(0.01) == 8
    small = significance_table(records)
    assert all(r["verdict"].startswith("n too small") for r in small.csv_rows)
    scenes = tuple(f"s{i}" for i in range(8))
    write_fake_results(tmp_path, [FakeRun("edsr"), FakeRun("ssrnet")], scenes=scenes, size=16, bands=8)
    big = load_records(tmp_path)
    table = significance_table(big)
    row = next(r for r in table.csv_rows if r["metric"] == "psnr")
    assert row["best"] == "SSRNet" and row["second"] == "EDSR" and row["n_scenes"] == 8 and row["wins"] == 8
    a = [img["psnr"] for img in _per_image(tmp_path, "ssrnet")]
    b = [img["psnr"] for img in _per_image(tmp_path, "edsr")]
    assert row["p_value"] == pytest.approx(wilcoxon(a, b).pvalue, rel=1e-12)
    assert row["verdict"] == "significant" and row["p_value"] < 0.05
    assert row["mean_lead"] == pytest.approx(np.mean(np.subtract(a, b)), rel=1e-12)


def _per_image(root: Path, label: str) -> list[dict]:
    return json.loads((root / "cave" / "x2" / label / "seed0" / "metrics.json").read_text())["per_image"]


# ------------------------------------------------------------------------------------------ efficiency, ablations


def test_efficiency_table_reads_params_and_times(records, store):
    tables = {t.name: t for t in build_report(records, store)}
    rows = tables["efficiency"].csv_rows
    edsr = next(r for r in rows if r["method"] == "edsr" and r["scale"] == 2)
    assert edsr["params"] == _metrics(store, 2, "edsr")["params"]
    assert edsr["infer_seconds"] == pytest.approx(_metrics(store, 2, "edsr")["infer_seconds"])
    assert "1,0" in tables["efficiency"].to_markdown()  # thousands separator of the parameter counts


def test_ablation_table_in_paper_layout_with_published_rows(tmp_path):
    runs = [FakeRun("ssrnet", variant=v, experiment="table2_check", noise=n)
            for v, n in ((None, 0.010), ("nolff", 0.012), ("nogrl", 0.013), ("nolff_nogrl", 0.015))]
    write_fake_results(tmp_path, runs, size=16)
    table = ablation_table(load_records(tmp_path), "table2_check", tmp_path)
    assert "Table II" in table.title
    markdown = table.to_markdown()
    header = _md_row(markdown, ["Dataset"])
    assert header[3:5] == ["lff", "grl"] and header[-2:] == ["Paper", "Δ"]
    off_off = _md_row(markdown, ["CAVE", "×2", "SSRNet", "off", "off"])
    assert off_off[-2] == "44.03 / 0.973 / 2.36"
    on_on = _md_row(markdown, ["CAVE", "×2", "SSRNet", "on", "on"])
    assert on_on[-2] == "44.99 / 0.974 / 2.23" and on_on[6].startswith("**")


def test_ablation_loss_and_depth_match_tables_i_and_iv():
    base = {"method": "ssrnet", "dataset": "cave", "scale": 2}
    assert pub.ablation_match("I", {**base, "loss": "mse_sam"}).psnr == 43.22
    assert pub.ablation_match("I", {**base, "loss": "mse"}).psnr == 44.62
    assert pub.ablation_match("IV", {**base, "options": {"n_modules": 5}}).psnr == 45.13
    assert pub.ablation_match("III", {**base, "options": {"block": "standard"}}).params == 2_562_000
    assert pub.ablation_match("II", {**base, "scale": 4}) is None
    assert pub.table_v("Harvard", 3, "fcnn3d").ssim == 0.948 and pub.table_v("cave", 2, "ssrnet", "nolff") is None
    assert len(pub.TABLE_V) == 45


def test_experiment_grid_finds_shared_default_run(store):
    """SSRNet's default run serves Table IV's D = 3 row even though no run named table4_depth."""
    result = CliRunner().invoke(main, ["report", "--results", str(store), "--experiment", "table4_depth",
                                       "--format", "md", "--out", str(store / "reports_t4")])
    assert result.exit_code == 0, result.output
    assert "Table IV" in result.output and "45.01 / 0.974 / 2.23" in result.output


def test_experiment_grid_follows_the_dataset_its_runs_used(tmp_path):
    """`hsibench run --experiment table2_ablation --dataset synthetic` reuses a finished default run."""
    write_fake_results(tmp_path, [FakeRun("edsr"), FakeRun("ssrnet"),
                                  FakeRun("ssrnet", variant="nolff", experiment="table2_ablation")],
                       dataset="synthetic", size=16, bands=8)
    chosen = experiment_records(load_records(tmp_path), "table2_ablation")
    assert sorted(r["_label"] for r in chosen) == ["ssrnet", "ssrnet+nolff"]


# ------------------------------------------------------------------------------------------ LaTeX


def _check_latex_structure(tex: str) -> None:
    body = re.sub(r"\\[{}%&_$#]", "", tex)  # escaped specials are not structure
    depth = 0
    for char in body:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    for rule in ("\\toprule", "\\midrule", "\\bottomrule", "\\begin{tabular}", "\\end{tabular}"):
        assert rule in tex
    columns = len(re.search(r"\\begin\{tabular\}\{@\{\}([lcr]+)@\{\}\}", tex).group(1))
    table = tex.split("\\toprule", 1)[1].split("\\bottomrule", 1)[0]
    for line in table.splitlines():
        line = line.strip()
        if line.endswith("\\\\"):
            cells = re.split(r"(?<!\\)&", line)
            spans = sum(int(m) - 1 for m in re.findall(r"\\multicolumn\{(\d+)\}", line))
            assert len(cells) + spans == columns, line
    code = "\n".join(line for line in tex.splitlines() if not line.startswith("%"))  # comment lines aside
    assert not re.search(r"(?<!\\)[_%]", code)  # underscores and percents escaped
    assert "`" not in tex.replace("``", "")  # no markdown code span leaks into LaTeX


def test_latex_is_structurally_valid(records, store):
    assert latex_escape("a_b 5% ±") == r"a\_b 5\% $\pm$"
    for table in build_report(records, store):
        _check_latex_structure(table.to_latex())


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_compiles_with_pdflatex(records, store, tmp_path):
    tables = build_report(records, store)
    document = ("\\documentclass{article}\n\\usepackage[margin=1cm,landscape]{geometry}\n\\usepackage{booktabs}\n"
                "\\begin{document}\n" + "\n".join(t.to_latex() for t in tables) + "\\end{document}\n")
    (tmp_path / "report.tex").write_text(document, encoding="utf-8")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "report.tex"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-2000:]
    assert (tmp_path / "report.pdf").stat().st_size > 1000


# ------------------------------------------------------------------------------------------ files and CLI


def test_write_report_files(records, store, tmp_path):
    written = write_report(build_report(records, store), tmp_path, formats=("md", "tex", "csv"))
    names = {p.name for p in written}
    assert {"report.md", "table5.tex", "table5.csv", "significance.csv", "efficiency.tex"} <= names
    assert (tmp_path / "report.md").read_text(encoding="utf-8").startswith("**Table V")


def test_cli_report_writes_and_prints(store):
    result = CliRunner().invoke(main, ["report", "--results", str(store), "--format", "md,csv", "--no-published"])
    assert result.exit_code == 0, result.output
    assert "Table V (this run)." in result.output and "paper" not in result.output.split("Dataset", 1)[1]
    assert "**" not in result.output and "<u>" not in result.output  # plain text in the terminal
    assert (store / "reports" / "report.md").read_text(encoding="utf-8").startswith("**Table V (this run).**")
    assert (store / "reports" / "report.md").is_file() and (store / "reports" / "table5.csv").is_file()
    assert not (store / "reports" / "table5.tex").exists()


def test_cli_report_errors(tmp_path, store):
    result = CliRunner().invoke(main, ["report", "--results", str(tmp_path / "none")])
    assert result.exit_code == 2 and "Error:" in result.output and "hsibench run" in result.output
    result = CliRunner().invoke(main, ["report", "--results", str(store), "--experiment", "table9_none"])
    assert result.exit_code == 2 and "table9_none" in result.output and "hsibench run --experiment" in result.output
    result = CliRunner().invoke(main, ["report", "--results", str(store), "--format", "docx"])
    assert result.exit_code == 2 and "docx" in result.output


def test_no_paper_rows_for_a_dataset_the_paper_lacks(tmp_path):
    write_fake_results(tmp_path, [FakeRun("bicubic"), FakeRun("ssrnet")], dataset="synthetic", size=16, bands=8)
    table = table_v(load_records(tmp_path), tmp_path, published=True)
    sources = [row[2][0].text for row in table.rows]
    assert sources == ["ours"]
    assert all("published" not in row or row["published"] is None for row in table.csv_rows)


SPEC = Path(__file__).resolve().parents[2] / "shared" / "PROTOCOL.md"


@pytest.mark.skipif(not SPEC.is_file(), reason=f"{SPEC} (the project's specification) is not present")
def test_published_numbers_match_the_specification():
    """Every Table V cell and every Table I–IV row equals the transcription in PROTOCOL.md section 7."""
    text = SPEC.read_text(encoding="utf-8").split("## 7.", 1)[1]
    triple = r"(\d+\.\d+) / (\d\.\d+) / (\d\.\d+)"
    seen = 0
    for line in text.splitlines():
        match = re.match(r"\| (CAVE|Harvard|Foster) \| ×(\d) \|(.*)\|$", line)
        if match:
            cells = re.findall(triple, match.group(3))
            for method, cell in zip(("bicubic", "gdrrn", "fcnn3d", "edsr", "ssrnet"), cells):
                ref = pub.table_v(match.group(1), int(match.group(2)), method)
                assert (ref.psnr, ref.ssim, ref.sam) == tuple(float(v) for v in cell), (line, method)
                seen += 1
    assert seen == 45
    rows = {"I": [pub.TABLE_I[k] for k in ("mse", "l1", "mse+sam")],
            "II": [pub.TABLE_II[k] for k in ((False, False), (True, False), (False, True), (True, True))],
            "III": [pub.TABLE_III[k] for k in ("standard", "separable")],
            "IV": [pub.TABLE_IV[d] for d in (2, 3, 4, 5)]}
    for table, expected in rows.items():
        line = next(l for l in text.splitlines() if l.startswith(f"Table {table} ("))
        values = [tuple(float(v) for v in t) for t in re.findall(triple, line)]
        assert values == [(r.psnr, r.ssim, r.sam) for r in expected], table
