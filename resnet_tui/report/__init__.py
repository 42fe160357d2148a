"""A run shown as text: tables, confusion heatmaps, exports, number formats, the CLI console."""
