"""vfedsim: network-in-the-loop co-simulation of federated fine-tuning over vehicular networks."""
__version__ = "0.1.0"
