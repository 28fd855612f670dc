"""Federated strategies: SimPy generator processes that sequence select, transfer, train, aggregate."""
from .base import STRATEGIES, Learning, RoundContext, StrategyContext
from .sync import SyncStrategy

__all__ = ["STRATEGIES", "Learning", "RoundContext", "StrategyContext", "SyncStrategy"]
