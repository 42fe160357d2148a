"""Datasets: one module per source, and the input pipeline that feeds the model."""
