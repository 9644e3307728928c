"""Central collector: validate, store once, alert staff, serve the dashboard."""
