"""Streamlit page layouts for app.py: they lay pages out and call the audit and train libraries."""
