"""One module per page; `layout.py` holds the frame they share."""
