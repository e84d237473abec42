"""Views of the accounts app, one module per group of pages (see urls.py)."""
