"""The Textual dashboard. Importing it does not import TensorFlow."""
