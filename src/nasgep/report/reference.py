"""The paper's published rows of Tables I-III, as labelled reference data.

Values are the strings printed in the paper (Alves & de Oliveira, NASGEP; Tables I-III and
the RI in section IV-B1), so the published precision is kept; :func:`parse` turns one into
numbers for the CSV files. These rows are shown beside measured rows and always carry
:data:`LABEL`; they are never mixed into measured statistics.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

#: The ``Source`` of every published row.
LABEL = "paper (reference)"

#: RI of NASGEP's CutOut + AA searches over random sampling (paper section IV-B1).
PAPER_RI = "0.3098"


@dataclass(frozen=True)
class AblationRow:
    """One row of Table I (CIFAR-10, five runs each)."""

    key: str
    label: str
    test_error: str
    params: str
    ri: str | None = None
    runs: int = 5


@dataclass(frozen=True)
class MethodRow:
    """One row of Table II (CIFAR) or Table III (ImageNet mobile setting).

    ``results`` maps a column key (``cifar10_test_error``, ``top1``, ...) to the
    published string, ``-`` where the paper has none.
    """

    method: str
    search_space: str
    search_strategy: str
    gpu_days: str
    results: dict[str, str] = field(default_factory=dict)


#: Table I, keyed like the default ``ablations`` of the configuration.
TABLE1: tuple[AblationRow, ...] = (
    AblationRow("cutout", "CutOut only", "3.54 ± 0.15", "3.62M ± 0.18"),
    AblationRow("cutout_aa", "CutOut + AA", "2.82 ± 0.13", "3.62M ± 0.18"),
    AblationRow("cutout_dp", "CutOut + Drop-Path", "3.24 ± 0.10", "3.62M ± 0.18"),
    AblationRow("cutout_dp_aa", "CutOut + Drop-Path + AA", "2.99 ± 0.07", "3.62M ± 0.18"),
    AblationRow("cutout_aa_nws", "CutOut + AA + No Weight Sharing", "2.92 ± 0.19", "3.48M ± 0.34"),
    AblationRow("cutout_aa_random", "CutOut + AA + Random Sampling", "3.12 ± 0.28", "2.54M ± 0.55",
                ri=PAPER_RI),
)



def _t2(method: str, space: str, strategy: str, days: str,
        c10: str, p10: str, c100: str, p100: str) -> MethodRow:
    return MethodRow(method, space, strategy, days,
                     {"cifar10_test_error": c10, "cifar10_params": p10,
                      "cifar100_test_error": c100, "cifar100_params": p100})


TABLE2: tuple[MethodRow, ...] = (
    _t2("WideResNet [29]", "Chain", "Manual", "N/A", "3.08 ± 0.16", "36.5M", "18.41 ± 0.27", "36.5M"),
    _t2("ResNeXt [30]", "Multi-branch", "Manual", "N/A", "3.58", "34.4M", "17.31", "34.4M"),
    _t2("DenseNet-BC [31]", "Chain", "Manual", "N/A", "3.46", "25.6M", "17.18", "25.6M"),
    _t2("NAS [14]", "Chain", "RNN and RL", "2000", "4.47", "7.1M", "-", "-"),
    _t2("NASNet [6]", "NAS-cell", "RL", "2000", "2.65", "3.3M", "-", "-"),
    _t2("AmoebaNet [7]", "NAS-cell", "Evolution", "3150", "2.55", "2.8M", "-", "-"),
    _t2("EANN-Net [32]", "Chain", "Evolution", "-", "7.05 ± 0.02", "-", "-", "-"),
    _t2("CoDeepNEAT [11]", "Multi-branch", "Evolution", "> 1", "7.3", "-", "-", "-"),
    _t2("Genetic CNN [33]", "Multi-branch", "Evolution", "20", "7.10", "-", "29.03", "-"),
    _t2("Hill-climbing [2]", "Multi-branch", "Hill-climbing", "1", "5.2", "19.7M", "23.4", "22.3M"),
    _t2("DARTS [5]", "DAG-cell", "Gradient", "4", "2.76 ± 0.09", "3.3M", "-", "-"),
    _t2("NASGEP", "GEP-based cell", "Evolution", "1", "2.82 ± 0.13", "3.62M ± 0.18",
        "18.83 ± 0.39", "3.59M ± 0.30"),
)


def _t3(method: str, space: str, strategy: str, days: str,
        top1: str, top5: str, params: str) -> MethodRow:
    return MethodRow(method, space, strategy, days, {"top1": top1, "top5": top5, "params": params})


TABLE3: tuple[MethodRow, ...] = (
    _t3("AlexNet [35]", "Chain", "Manual", "N/A", "37.5", "17", "60M"),
    _t3("SqueezeNet [36]", "Chain", "Manual", "N/A", "39.6", "17.5", "0.42M"),
    _t3("ShuffleNet [37]", "Chain", "Manual", "N/A", "24.7", "-", "5M"),
    _t3("MobileNet [38]", "Chain", "Manual", "N/A", "29.4", "-", "4.2M"),
    _t3("NASNet [6]", "NAS-cell", "RL", "2000", "26", "8.4", "5.3M"),
    _t3("AmoebaNet [7]", "NAS-cell", "Evolution", "3150", "24.3", "7.6", "6.4M"),
    _t3("PNAS [39]", "NAS-cell", "SMBO", "225", "25.8", "8.1", "5.1M"),
    _t3("DARTS [5]", "DAG-cell", "Gradient", "4", "26.7", "8.7", "4.7M"),
    _t3("NASGEP", "GEP-based cell", "Evolution", "1", "29.51", "10.37", "4.1M"),
)

_NUMBER = re.compile(r"^\s*(?P<mean>[0-9.]+)\s*(?P<unit>[MK]?)\s*(?:±\s*(?P<std>[0-9.]+))?\s*$")
_UNITS = {"": 1.0, "K": 1e3, "M": 1e6}


def parse(text: str | None) -> tuple[float, float]:
    """``'3.62M ± 0.18'`` -> ``(3620000.0, 180000.0)``; ``'2.65'`` -> ``(2.65, nan)``;
    ``'-'``, ``'N/A'``, ``None`` -> ``(nan, nan)``. The unit applies to the spread too."""
    if text is None:
        return math.nan, math.nan
    match = _NUMBER.match(text)
    if not match:
        return math.nan, math.nan
    scale = _UNITS[match["unit"]]
    std = float(match["std"]) * scale if match["std"] else math.nan
    return float(match["mean"]) * scale, std


def ablation(key: str, label: str | None = None) -> AblationRow | None:
    """The published Table I row for an ablation key (or, failing that, its label)."""
    for row in TABLE1:
        if row.key == key:
            return row
    for row in TABLE1:
        if label is not None and row.label == label:
            return row
    return None
