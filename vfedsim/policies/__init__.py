"""Client selection and aggregation policies: small Protocols with name registries (no simpy, no torch)."""
from .aggregation import (AGGREGATORS, Aggregator, FedAdagrad, FedAdam, FedAvg, FedProx, FedYogi, Krum, LoraProduct,
                          Median, MultiKrum, TrimmedMean, make_aggregator)
from .selection import (SELECTORS, AllSelector, ChannelSelector, CoverageAwareSelector, DeadlineSelector,
                        FairSelector, OortSelector, PowerOfChoiceSelector, RandomSelector, RsuBalancedSelector,
                        Selector, WorldSnapshot, make_selector)

__all__ = ["AGGREGATORS", "Aggregator", "FedAvg", "FedProx", "FedAdam", "FedYogi", "FedAdagrad", "Median",
           "TrimmedMean", "Krum", "MultiKrum", "LoraProduct", "make_aggregator",
           "SELECTORS", "Selector", "WorldSnapshot", "RandomSelector", "CoverageAwareSelector", "AllSelector",
           "ChannelSelector", "DeadlineSelector", "OortSelector", "PowerOfChoiceSelector", "FairSelector",
           "RsuBalancedSelector", "make_selector"]
