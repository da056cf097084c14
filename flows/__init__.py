"""Prefect flows and tasks that orchestrate softmax_core and registry."""
