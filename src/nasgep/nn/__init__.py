"""Networks from genomes (torch): the operation table, compiled cells, whole networks.

- :mod:`.operations`  ``OPS`` (operation name -> ``(channels, stride) -> module``), the 1x1
  ReLU-conv-BN block, the factorised reduction, the stems
- :mod:`.cell`        :class:`Cell`: a cell genome compiled into modules and a flat plan
- :mod:`.network`     :func:`build_network`, parameter counts and limits, inheritance units
"""
from .cell import Cell, Gene, Place, Step, drop_path
from .network import (
    Classifier,
    Macro,
    Network,
    Stage,
    build_network,
    count_network_parameters,
    count_parameters,
)
from .operations import OPS, STEMS, BatchNorm2d, Conv2d, ConvBlock, FactorizedReduce, relu_conv_bn

__all__ = [
    "OPS",
    "STEMS",
    "BatchNorm2d",
    "Conv2d",
    "ConvBlock",
    "Cell",
    "Classifier",
    "FactorizedReduce",
    "Gene",
    "Macro",
    "Network",
    "Place",
    "Stage",
    "Step",
    "build_network",
    "count_network_parameters",
    "count_parameters",
    "drop_path",
    "relu_conv_bn",
]
