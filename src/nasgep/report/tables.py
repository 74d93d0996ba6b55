"""Tables I-III of the paper from a study's results, beside the published rows.

Measured numbers come only from the files the CLI verbs write (``metrics.json`` of each
training, ``history.parquet`` of each search; formats in ``docs/architecture.md``):
mean ± sample standard deviation over the seeds that exist, with the number of runs.
Published rows come from :mod:`nasgep.report.reference` and are labelled
``paper (reference)``. Each table is written as CSV (numbers, one column per statistic),
Markdown, LaTeX and HTML (formatted ``mean ± std``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..io import atomic_write_text
from . import TABLE_FORMATS, Study, is_number, present, read_history, read_json, read_metrics
from . import reference as ref

MEASURED = "measured"
NASGEP_MEASURED = "NASGEP (this study)"
RANDOM_MEASURED = "Random sampling (this study)"


@dataclass
class Stat:
    """Mean, sample standard deviation (nan for one run) and number of runs."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat:
        s = pd.Series([v for v in values if v is not None], dtype="float64").dropna()
        if s.empty:
            return cls(math.nan, math.nan, 0)
        return cls(float(s.mean()), float(s.std()) if len(s) > 1 else math.nan, int(len(s)))


@dataclass
class Table:
    """A finished table: ``data`` for CSV, ``display`` (strings) for Markdown/LaTeX/HTML."""

    name: str
    caption: str
    data: pd.DataFrame
    display: pd.DataFrame


# -- formatting -------------------------------------------------------------------
def fmt(mean: float, std: float = math.nan, digits: int = 2, suffix: str = "") -> str:
    """``2.8212, 0.1288`` -> ``'2.82 ± 0.13'``; a nan spread is left out; nan -> ``'-'``."""
    if mean is None or math.isnan(mean):
        return "-"
    text = f"{mean:.{digits}f}{suffix}"
    if std is not None and not math.isnan(std):
        text += f" ± {std:.{digits}f}"
    return text


def fmt_params(stat: Stat) -> str:
    """Parameters in millions like the paper, ``'3.62M ± 0.18'``; below 100,000 in
    thousands, ``'27.5K ± 1.2'`` (small demo networks)."""
    if not math.isnan(stat.mean) and stat.mean < 1e5:
        return fmt(stat.mean / 1e3, stat.std / 1e3, 1, "K")
    return fmt(stat.mean / 1e6, stat.std / 1e6, 2, "M")


def accuracy(metrics: dict[str, Any]) -> float | None:
    """Test accuracy in %: ``test_accuracy``, else ``100 - test_error``."""
    if metrics.get("test_accuracy") is not None:
        return float(metrics["test_accuracy"])
    if metrics.get("test_error") is not None:
        return 100.0 - float(metrics["test_error"])
    return None


def relative_improvement(acc_searched: float, acc_random: float) -> float:
    """RI = 100 × (Acc_searched − Acc_random) / Acc_random (Yang et al.), from the means."""
    return 100.0 * (acc_searched - acc_random) / acc_random


def _runs_note(n: int, expected: int) -> str:
    if n == 0:
        return "not run yet"
    return "" if n == expected else f"{n} of {expected} runs"


# -- Table I ----------------------------------------------------------------------
def ri_baseline(study: Study, random_variant: str) -> str:
    """The searched ablation a random-sampling ablation is compared with: the one with
    the same switches (CutOut, AA, drop-path), else the best ablation."""
    for variant in study.ablations:
        if study.source(variant) == "search" and study.switches(variant) == study.switches(random_variant):
            return variant
    return study.best_ablation


def random_variant(study: Study) -> str | None:
    """The random-sampling ablation with the best ablation's switches (else the first)."""
    randoms = [v for v in study.ablations if study.source(v) == "random"]
    for v in randoms:
        if study.switches(v) == study.switches(study.best_ablation):
            return v
    return randoms[0] if randoms else None


def _ri_uncertainty(searched: Sequence[float], random: Sequence[float]) -> tuple[float, float, float]:
    """(CI low, CI high, one-sided p) of RI over the seeds; NaN where too few runs."""
    from .searchphase import permutation_p, ri_interval

    _, low, high = ri_interval(searched, random)
    return low, high, permutation_p(searched, random)


def _interval(low: float, high: float) -> str:
    return "" if math.isnan(low) or math.isnan(high) else f"[{low:.2f}, {high:.2f}]"


def _published_ablation(published, source: str, variant: str) -> tuple[dict, dict]:
    """Table I's reference row of the paper's published numbers (data row, display row)."""
    e_mean, e_std = ref.parse(published.test_error)
    p_mean, p_std = ref.parse(published.params)
    data_row = {
        "ablation": variant, "configuration": published.label, "source": ref.LABEL,
        "search": source, "dataset": "cifar10",
        "test_error": e_mean, "test_error_std": e_std,
        "params": p_mean, "params_std": p_std, "runs": published.runs,
        "ri": ref.parse(published.ri)[0], "ri_versus": "cutout_aa" if published.ri else None,
    }
    display_row = {
        "Configuration": published.label, "Source": ref.LABEL,
        "Test error (%)": published.test_error, "Params": published.params,
        "Runs": str(published.runs), "RI": published.ri or "", "RI 95% CI": "", "p": "",
        "Note": "CIFAR-10",
    }
    return data_row, display_row


def table1(study: Study) -> Table:
    """Table I: every ablation trained on the ablation dataset, over the seeds."""
    dataset = study.ablation_dataset
    n_seeds = len(study.seeds)
    stats: dict[str, tuple[Stat, Stat, Stat]] = {}
    accuracies: dict[str, list[float]] = {}
    for variant in study.ablations:
        runs = list(study.metrics(dataset, variant))
        accuracies[variant] = [a for a in (accuracy(m) for m in runs) if a is not None]
        stats[variant] = (Stat.of(m.get("test_error") for m in runs),
                          Stat.of(m.get("params") for m in runs),
                          Stat.of(accuracy(m) for m in runs))
    data_rows: list[dict[str, Any]] = []
    display_rows: list[dict[str, str]] = []
    for variant in study.ablations:
        error, params, acc = stats[variant]
        ri, ri_low, ri_high, ri_p, versus = math.nan, math.nan, math.nan, math.nan, ""
        if study.source(variant) == "random":
            versus = ri_baseline(study, variant)
            base_acc = stats[versus][2] if versus in stats else Stat(math.nan, math.nan, 0)
            if acc.n and base_acc.n:
                ri = relative_improvement(base_acc.mean, acc.mean)
                ri_low, ri_high, ri_p = _ri_uncertainty(accuracies[versus], accuracies[variant])
        label = study.ablation_label(variant)
        data_rows.append({
            "ablation": variant, "configuration": label, "source": MEASURED,
            "search": study.source(variant), "dataset": dataset,
            "test_error": error.mean, "test_error_std": error.std,
            "params": params.mean, "params_std": params.std, "runs": error.n,
            "ri": ri, "ri_versus": versus or None, "ri_ci_low": ri_low, "ri_ci_high": ri_high, "ri_p": ri_p,
        })
        display_rows.append({
            "Configuration": label, "Source": MEASURED,
            "Test error (%)": fmt(error.mean, error.std), "Params": fmt_params(params),
            "Runs": str(error.n), "RI": fmt(ri, digits=4) if versus else "",
            "RI 95% CI": _interval(ri_low, ri_high) if versus else "",
            "p": fmt(ri_p, digits=3) if versus else "",
            "Note": _runs_note(error.n, n_seeds),
        })
        published = ref.ablation(variant, label)
        if published is not None:
            data_row, display_row = _published_ablation(published, study.source(variant), variant)
            data_rows.append(data_row)
            display_rows.append(display_row)
    caption = (f"Table I: ablation study on {study.label(dataset)}: test error and parameters, "
               f"mean ± std over seeds; RI = 100 × (Acc_searched − Acc_random) / Acc_random "
               f"from the mean accuracies, its 95 % bootstrap interval and one-sided permutation "
               f"p-value (searched better than random) over the seeds (nasgep.report.searchphase). "
               f"Rows marked '{ref.LABEL}' are the paper's published numbers.")
    return Table("table1", caption, pd.DataFrame(data_rows), pd.DataFrame(display_rows))


# -- Table II ---------------------------------------------------------------------
def search_gpu_days(study: Study, datasets: Sequence[str], method: str = "search") -> Stat:
    """Search cost in GPU days per run: candidate training time on all devices over 86,400.
    A history row's ``seconds`` is its individual's training time so far (a survivor's row
    of each generation repeats its earlier epochs' time), so each individual counts once,
    with its last row's seconds; summing the rows counted a survivor's first epochs once a
    generation (30 % too much on a 2-generation demo search)."""
    return Stat.of(h.groupby("id")["seconds"].max().fillna(0).sum() / 86400.0
                   for h in _histories(study, datasets, method))


def search_epochs(study: Study, datasets: Sequence[str], method: str = "search") -> Stat:
    """Search cost in candidate epochs per run (what ``search.budget_epochs`` counts): the
    sum of ``history.parquet``'s ``epochs_this_generation``."""
    return Stat.of(h["epochs_this_generation"].sum() for h in _histories(study, datasets, method))


def _histories(study: Study, datasets: Sequence[str], method: str) -> Iterable[pd.DataFrame]:
    for dataset in datasets:
        for _, path in study.histories(dataset, method):
            history = read_history(path, ["id", "seconds", "epochs_this_generation"])
            if len(history):      # a search that trained no candidate (its search.json says so) measured no cost
                yield history


def past_limits_note(study: Study, datasets: Sequence[str], method: str = "search") -> str:
    """Searches that ran past the config's ``max_generations`` or ``budget_epochs`` (a limit
    lowered after they ran: they keep what they ran, so the seeds' costs are of other
    budgets), as a note for the table; '' when none did."""
    search = study.config["search"]
    limits = (("generations", "max_generations"), ("epochs", "budget_epochs"))
    found = []
    for dataset in datasets:
        for seed, path in study.histories(dataset, method):
            summary = path.with_name("search.json")
            ran = read_json(summary) if present(summary) else {}
            for field, key in limits:
                if search[key] is not None and is_number(ran.get(field)) and ran[field] > search[key]:
                    found.append(f"{study.label(dataset)} seed {seed} ran {ran[field]} {field}")
    if not found:
        return ""
    shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
    return (f"past the config's limits (search.max_generations = {search['max_generations']}, "
            f"budget_epochs = {search['budget_epochs']}; lowered after they ran): {shown}")


def fmt_cost(days: Stat, epochs: Stat) -> str:
    """``'0.98 ± 0.01 (2450 ± 0 epochs)'``: measured GPU days beside the epochs trained."""
    text = fmt(days.mean, days.std)
    return text if math.isnan(epochs.mean) else f"{text} ({fmt(epochs.mean, epochs.std, 0)} epochs)"


def table2(study: Study) -> Table:
    """Table II: the best configuration fully trained on each search dataset."""
    datasets = study.search_datasets
    n_seeds = len(study.seeds)
    gpu, epochs = search_gpu_days(study, datasets), search_epochs(study, datasets)
    data_rows: list[dict[str, Any]] = []
    display_rows: list[dict[str, str]] = []
    for row in ref.TABLE2:
        data = {"method": row.method, "source": ref.LABEL, "search_space": row.search_space,
                "search_strategy": row.search_strategy, "gpu_days": row.gpu_days, "gpu_days_std": math.nan}
        shown = {"Method": row.method, "Source": ref.LABEL, "Search space": row.search_space,
                 "Search strategy": row.search_strategy, "GPU days": row.gpu_days}
        for d in datasets:
            err_text = row.results.get(f"{d}_test_error", "-")
            par_text = row.results.get(f"{d}_params", "-")
            e_mean, e_std = ref.parse(err_text)
            p_mean, p_std = ref.parse(par_text)
            data.update({f"{d}_test_error": e_mean, f"{d}_test_error_std": e_std,
                         f"{d}_params": p_mean, f"{d}_params_std": p_std,
                         f"{d}_runs": 5 if row.method == "NASGEP" and not math.isnan(e_mean) else math.nan})
            shown[f"{study.label(d)} test error (%)"] = err_text
            shown[f"{study.label(d)} params"] = par_text
        shown["Note"] = ""
        data_rows.append(data)
        display_rows.append(shown)

    measured = [(NASGEP_MEASURED, "Evolution", study.best_ablation, gpu, epochs)]
    rv = random_variant(study)
    if rv is not None and any(next(study.metrics(d, rv), None) for d in datasets):
        measured.append((RANDOM_MEASURED, "Random", rv, Stat(0.0, math.nan, 0), Stat(0.0, math.nan, 0)))
    for method, strategy, variant, days, ep in measured:
        data = {"method": method, "source": MEASURED, "search_space": "GEP-based cell",
                "search_strategy": strategy, "gpu_days": days.mean, "gpu_days_std": days.std,
                "search_epochs": ep.mean, "search_epochs_std": ep.std, "variant": variant}
        shown = {"Method": method, "Source": MEASURED, "Search space": "GEP-based cell",
                 "Search strategy": strategy,
                 "GPU days": "0" if strategy == "Random" else fmt_cost(days, ep)}
        notes = [past_limits_note(study, datasets)] if strategy == "Evolution" else []
        notes = [n for n in notes if n]
        for d in datasets:
            runs = list(study.metrics(d, variant))
            error = Stat.of(m.get("test_error") for m in runs)
            params = Stat.of(m.get("params") for m in runs)
            data.update({f"{d}_test_error": error.mean, f"{d}_test_error_std": error.std,
                         f"{d}_params": params.mean, f"{d}_params_std": params.std, f"{d}_runs": error.n})
            shown[f"{study.label(d)} test error (%)"] = fmt(error.mean, error.std)
            shown[f"{study.label(d)} params"] = fmt_params(params)
            note = _runs_note(error.n, n_seeds)
            if note and strategy == "Random" and d != study.ablation_dataset:
                note = "not trained (outside the plan; see docs/workflow.md)" if error.n == 0 else note
            if note:
                notes.append(f"{study.label(d)}: {note}")
        shown["Note"] = "; ".join(notes)
        data_rows.append(data)
        display_rows.append(shown)
    caption = (f"Table II: test error (%) and parameters of the best configuration "
               f"({study.ablation_label(study.best_ablation)}) fully trained on each search dataset, "
               f"mean ± std over seeds; GPU days of one search (measured candidate training time) "
               f"with the candidate epochs it trained. Rows marked '{ref.LABEL}' "
               f"are the paper's published numbers.")
    return Table("table2", caption, pd.DataFrame(data_rows), pd.DataFrame(display_rows))


# -- Table III --------------------------------------------------------------------
def table3(study: Study) -> Table:
    """Table III: the best cells of ``transfer.source`` trained in the ImageNet mobile
    setting (one run), or a row that says why it was not run."""
    data_rows: list[dict[str, Any]] = []
    display_rows: list[dict[str, str]] = []
    for row in ref.TABLE3:
        t1, t5, p = (row.results[k] for k in ("top1", "top5", "params"))
        data_rows.append({"method": row.method, "source": ref.LABEL, "search_space": row.search_space,
                          "search_strategy": row.search_strategy, "gpu_days": row.gpu_days,
                          "top1_error": ref.parse(t1)[0], "top5_error": ref.parse(t5)[0],
                          "params": ref.parse(p)[0], "status": "published"})
        display_rows.append({"Method": row.method, "Source": ref.LABEL, "Search space": row.search_space,
                             "Search strategy": row.search_strategy, "GPU days": row.gpu_days,
                             "Top-1 error (%)": t1, "Top-5 error (%)": t5, "Params": p, "Note": ""})
    dataset = study.transfer_dataset
    gpu = search_gpu_days(study, [study.transfer_source])
    top1 = top5 = params = math.nan
    if dataset is None:
        status = "not run"
        note = ("not run: transfer.dataset is null (add an ImageNet folder dataset to 'datasets' "
                "and set transfer.dataset to its name)")
    else:
        path = study.transfer_dir(dataset) / "metrics.json"
        if present(path):
            study.check_training_settings(path.parent, dataset, study.best_ablation, study.seeds[0], stem="imagenet")
            m = read_metrics(path, dataset=dataset)
            top1 = float(m["test_error"]) if m.get("test_error") is not None else math.nan
            top5 = float(m["test_top5_error"]) if m.get("test_top5_error") is not None else math.nan
            params = float(m["params"]) if m.get("params") is not None else math.nan
            status, note = "measured", f"{study.label(dataset)}, cells of {study.label(study.transfer_source)}"
        else:
            status, note = "not run yet", f"{path} does not exist yet"
    shown_value = (lambda v: fmt(v)) if status == "measured" else (lambda v: status)
    data_rows.append({"method": NASGEP_MEASURED, "source": MEASURED, "search_space": "GEP-based cell",
                      "search_strategy": "Evolution", "gpu_days": gpu.mean, "top1_error": top1,
                      "top5_error": top5, "params": params, "status": status})
    display_rows.append({"Method": NASGEP_MEASURED, "Source": MEASURED, "Search space": "GEP-based cell",
                         "Search strategy": "Evolution", "GPU days": fmt(gpu.mean, gpu.std),
                         "Top-1 error (%)": shown_value(top1), "Top-5 error (%)": shown_value(top5),
                         "Params": fmt_params(Stat(params, math.nan, 1)) if status == "measured" else status,
                         "Note": note})
    caption = (f"Table III: ImageNet (mobile setting), the best {study.label(study.transfer_source)} "
               f"cells (highest search fitness over the seeds), one run. Rows marked '{ref.LABEL}' "
               f"are the paper's published numbers.")
    return Table("table3", caption, pd.DataFrame(data_rows), pd.DataFrame(display_rows))


def build_tables(study: Study) -> list[Table]:
    return [table1(study), table2(study), table3(study)]


# -- writing ------------------------------------------------------------------------
_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                  "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials, then typeset ``±``, ``×`` and ``−`` in math mode."""
    out = "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))
    return out.replace("±", r"$\pm$").replace("×", r"$\times$").replace("−", "--")


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment (pandas ``to_latex``, cells escaped here)."""
    shown = table.display.map(latex_escape)
    shown.columns = [latex_escape(c) for c in shown.columns]
    return shown.to_latex(index=False, escape=False, caption=latex_escape(table.caption),
                          label=f"tab:{table.name}", column_format="l" * shown.shape[1])


def to_markdown(table: Table) -> str:
    return f"{table.caption}\n\n{table.display.to_markdown(index=False)}\n"


def to_html(table: Table) -> str:
    body = table.display.to_html(index=False, border=0, classes="table table-sm", escape=True)
    return f"<p><strong>{table.caption}</strong></p>\n{body}\n"


def write_table(table: Table, out_dir: str | Path) -> list[Path]:
    """Write ``<name>.csv``, ``.md``, ``.tex`` and ``.html`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writers = {
        "csv": lambda: table.data.to_csv(index=False),
        "md": lambda: to_markdown(table),
        "tex": lambda: to_latex(table),
        "html": lambda: to_html(table),
    }
    paths = []
    for ext in TABLE_FORMATS:
        path = out_dir / f"{table.name}.{ext}"
        atomic_write_text(path, writers[ext]())
        paths.append(path)
    return paths


def write_tables(study: Study, out_dir: str | Path) -> list[Path]:
    """Build Tables I-III of ``study`` and write them; returns the files written."""
    paths: list[Path] = []
    for table in build_tables(study):
        paths += write_table(table, out_dir)
    return paths
