"""The Streamlit front end: one module per view, plotly builders, the URL state and the cached runs.

``app.py`` only wires these together; nothing here is imported by the core.
"""
