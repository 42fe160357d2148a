"""Training: the trainer, its Keras callbacks and the plain events they emit.

Nothing here imports Textual; the dashboard and the CLI consume the events.
"""
