"""The models: their builders and the text of their summaries."""
