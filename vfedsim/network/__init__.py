"""The radio network: how bytes move between vehicles, RSUs and the cloud (docs/network.md).

A strategy reaches the network only through `Network` (`vfedsim.network.interface`). `FluidNetwork` is the
fluid model over the world's mobility and radio (`vfedsim.network.fluid`, its flow table and sharing math
in `vfedsim.network.flows`); `IdealNetwork` is the always-connected stand-in for tests and baselines.
"""
from .fluid import FluidNetwork
from .interface import DIRECTIONS, FAIL_CAUSES, IdealNetwork, Network, OnEvent, TransferResult

__all__ = ["FAIL_CAUSES", "DIRECTIONS", "TransferResult", "Network", "FluidNetwork", "IdealNetwork", "OnEvent"]
