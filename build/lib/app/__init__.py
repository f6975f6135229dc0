"""Streamlit demo app: composed image retrieval with text feedback.

The Streamlit script (``streamlit_app.py``) only lays out widgets; the logic it calls lives in
small plain-Python modules here (feedback normalisation, the chain of turns, the query
pipeline) so it can be unit-tested without a browser.
"""
