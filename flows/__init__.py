"""Prefect flows and tasks that orchestrate softmax_core and registry."""

#: the public modules, not imported here (each imports Prefect)
__all__ = ["events", "publishing", "report", "runner", "scoring", "service", "training"]
