"""Client selection and aggregation policies: small Protocols with name registries (no simpy, no torch)."""
from .aggregation import AGGREGATORS, Aggregator, FedAvg, make_aggregator
from .selection import SELECTORS, CoverageAwareSelector, RandomSelector, Selector, WorldSnapshot, make_selector

__all__ = ["AGGREGATORS", "Aggregator", "FedAvg", "make_aggregator", "SELECTORS", "Selector", "WorldSnapshot",
           "RandomSelector", "CoverageAwareSelector", "make_selector"]
