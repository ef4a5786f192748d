"""Streamlit-only helpers shared by app.py and the pages: session, errors, widgets, formatting.

``core`` never imports this package; pages import it instead of repeating these helpers.
"""
