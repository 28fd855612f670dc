"""Re-exports of the network interface (`vfedsim.strategies.network`) and the fluid network
(`vfedsim.strategies.fluid`), so that ``from vfedsim.strategies.transfer import ...`` keeps working."""
from .fluid import FluidNetwork
from .network import DIRECTIONS, FAIL_CAUSES, IdealNetwork, Network, OnEvent, TransferResult

__all__ = ["FAIL_CAUSES", "DIRECTIONS", "TransferResult", "Network", "FluidNetwork", "IdealNetwork", "OnEvent"]
