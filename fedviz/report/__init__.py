"""Consumers of the event stream: run records, ring transcripts, figures and forecasts."""
