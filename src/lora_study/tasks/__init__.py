"""Metrics for the study's evaluation tasks."""
