"""The staff dashboard: FastAPI + Jinja2, server-side SVG charts, served by the collector."""
