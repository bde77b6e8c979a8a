"""The HTTP scoring service: `mlops serve NAME@ALIAS`."""

# Rows of the prediction log held in memory before they are spilled to a file
# (`mlops serve --log-buffer`); here so that the CLI can name it without
# importing the service.
MAX_BUFFERED_ROWS = 100_000
