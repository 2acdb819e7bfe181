"""Placeholder: the real MLflow server fixture lands with the MLflow writer."""
