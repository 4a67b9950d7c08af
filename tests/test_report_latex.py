"""Every generated LaTeX table pastes as it is: it compiles and fits an article page and a two-column ``table*``.

With pdflatex installed, each table is compiled in a default ``article`` and in a two-column document
with IEEE's text width (7.16 in; IEEEtran itself is rarely installed), and the log must hold no
overfull box; the measured width of each tabular is also compared with the width estimate used
where pdflatex is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hsisr_bench.report import load_records
from hsisr_bench.report.tables import build_report

from report_fixtures import FakeRun, paper_methods, write_fake_results

#: Text width of a default 10pt article page (LaTeX's \textwidth there), in pt.
ARTICLE_WIDTH_PT = 345.0

PREAMBLES = {
    "article": "\\documentclass{article}\n",
    "ieee_twocolumn": "\\documentclass[twocolumn]{article}\n"
                      "\\usepackage[letterpaper,textwidth=7.16in,textheight=9.4in,columnsep=0.17in]{geometry}\n",
}

needs_pdflatex = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """The widest report the fixtures allow: five methods with several seeds, two datasets, paper rows, ablations."""
    root = tmp_path_factory.mktemp("latex")
    write_fake_results(root, paper_methods() + [FakeRun("ssrnet", seed=1), FakeRun("edsr", seed=1)], size=24, bands=12)
    write_fake_results(root, paper_methods() + [FakeRun("ssrnet", seed=1)], dataset="harvard", scale=4, size=24,
                       bands=12, seed=5)
    ablation = [FakeRun("ssrnet", variant=v, options=o, experiment="table2_ablation", noise=n)
                for v, o, n in (("nolff", {"lff": False}, 0.012), ("nogrl", {"grl": False}, 0.013),
                                ("nolff_nogrl", {"lff": False, "grl": False}, 0.015))]
    ablation += [FakeRun("ssrnet", variant="standard", options={"block": "standard"}, experiment="table3_block",
                         params=2_562_000),
                 FakeRun("ssrnet", loss="mse_sam", experiment="table1_loss", noise=0.02),
                 FakeRun("ssrnet", loss="mse_sam", seed=1, experiment="table1_loss", noise=0.02)]
    write_fake_results(root, ablation, size=24, bands=12, seed=9)
    built = build_report(load_records(root), root)
    assert {"table5", "significance", "efficiency"} <= {t.name for t in built}
    assert any(t.name.startswith("ablation_") for t in built)
    return built


def _visible(cell: str) -> str:
    """The printed text of a LaTeX cell, roughly: commands dropped, math symbols as one character."""
    cell = re.sub(r"\\multicolumn\{\d+\}\{[lcr]\}", "", cell)
    cell = re.sub(r"\$\\(times|pm|uparrow|downarrow|Delta|alpha)\$|\$-\$|\$\^\\circ\$", "x", cell)
    cell = re.sub(r"\\(textbf|underline|scriptsize|texttt)", "", cell)
    return re.sub(r"[{}\\]", "", cell).replace("---", "-").replace("--", "-").strip()


def estimated_width_pt(tex: str) -> float:
    """Estimated width in pt of the tabular in ``tex`` at ``\\small`` with its ``\\tabcolsep``.

    Each column is as wide as its widest cell at 5.2 pt per character (the mean advance of digits and
    letters in 9pt Computer Modern), plus the column separation on both sides; ``@{}`` removes the outer
    padding. Spanned cells (``\\multicolumn``) are left out of the column widths.
    """
    sep = float(re.search(r"\\setlength\{\\tabcolsep\}\{([\d.]+)pt\}", tex).group(1))
    spec = re.search(r"\\begin\{tabular\}\{@\{\}([lcr]+)@\{\}\}", tex).group(1)
    body = tex.split("\\toprule", 1)[1].split("\\bottomrule", 1)[0]
    widths = [0.0] * len(spec)
    for line in body.splitlines():
        if not line.strip().endswith("\\\\") or "\\multicolumn" in line and "cmidrule" in line:
            continue
        cells = re.split(r"(?<!\\)&", line.strip()[:-2])
        if len(cells) != len(spec):
            continue  # a row with spanned cells
        for i, cell in enumerate(cells):
            widths[i] = max(widths[i], 5.2 * len(_visible(cell)))
    return sum(widths) + 2 * sep * (len(spec) - 1)


def test_every_table_is_estimated_to_fit_an_article_page(tables):
    """The fallback where pdflatex is absent (and a quick check where it is)."""
    for table in tables:
        tex = table.to_latex()
        assert estimated_width_pt(tex) <= ARTICLE_WIDTH_PT, (table.name, estimated_width_pt(tex))


def test_latex_has_sub_columns_a_short_caption_and_one_note(tables):
    table5 = next(t for t in tables if t.name == "table5")
    tex = table5.to_latex()
    assert "\\multicolumn{3}{c}{This run}" in tex and "\\multicolumn{3}{c}{Paper}" in tex
    assert "PSNR$\\uparrow$ & SSIM$\\uparrow$ & SAM$\\downarrow$" in tex
    caption = re.search(r"\\caption\{(.*)\}\n", tex).group(1)
    assert "Metric conventions" not in caption and len(caption) < 300
    assert tex.count("Metric conventions") == 1 and "\\begin{table*}" in tex and "@{}" in tex
    assert "{\\scriptsize $\\pm$" in tex  # the std over seeds on its own line, not widening the columns
    efficiency = next(t for t in tables if t.name == "efficiency").to_latex()
    assert "\\texttt{hsibench bench}" in efficiency and "`" not in efficiency.replace("``", "")


def _compile(tmp_path: Path, name: str, preamble: str, tex: str) -> tuple[str, list[float]]:
    """Compile ``tex`` in a document with ``preamble``; return the log and each tabular's measured width (pt)."""
    measured = tex.replace("\\begin{tabular}", "\\sbox0{\\begin{tabular}").replace(
        "\\end{tabular}", "\\end{tabular}}\\typeout{TABWIDTH \\the\\wd0}\\usebox0")
    document = preamble + "\\usepackage{booktabs}\n\\begin{document}\n" + measured + "\\clearpage\n\\end{document}\n"
    (tmp_path / f"{name}.tex").write_text(document, encoding="utf-8")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    log = (tmp_path / f"{name}.log").read_text(encoding="latin-1")
    assert result.returncode == 0, result.stdout[-2000:]
    return log, [float(w) for w in re.findall(r"TABWIDTH ([\d.]+)pt", log)]


@needs_pdflatex
@pytest.mark.parametrize("document", sorted(PREAMBLES))
def test_every_table_compiles_without_overfull_boxes(tables, tmp_path, document):
    for table in tables:
        tex = table.to_latex()
        log, widths = _compile(tmp_path, f"{document}_{table.name}", PREAMBLES[document], tex)
        assert "Overfull \\hbox" not in log, (document, table.name, re.findall(r"Overfull \\hbox.*", log))
        assert widths and max(widths) <= ARTICLE_WIDTH_PT, (table.name, widths)
        # the estimate the pdflatex-less test relies on is close to (and not below) what TeX measures
        estimate = estimated_width_pt(tex)
        assert max(widths) * 0.95 <= estimate <= max(widths) * 1.35, (table.name, widths, estimate)
