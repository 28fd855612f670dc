"""Federated strategies: SimPy generator processes that sequence select, transfer, train, aggregate.

Registered by name (``strategy.name``): ``sync`` (rounds with a deadline, over-commit, a participation
floor), ``async`` (FedBuff: buffered asynchronous aggregation with staleness weights) and ``hierarchical``
(RSU edge aggregation every round, cloud aggregation every ``cloud_every`` rounds).
"""
from .asynchronous import AsyncStrategy, staleness_weight
from .base import STRATEGIES, ClientStrategy, Learning, RoundContext, StrategyContext
from .hierarchical import HierarchicalStrategy
from .sync import SyncStrategy

__all__ = ["STRATEGIES", "Learning", "RoundContext", "StrategyContext", "ClientStrategy", "SyncStrategy",
           "AsyncStrategy", "HierarchicalStrategy", "staleness_weight"]
