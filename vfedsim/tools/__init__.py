"""Command-line helpers that live outside a run: ``sumo_trace`` makes a SUMO FCD trace (``vfedsim trace``)."""
