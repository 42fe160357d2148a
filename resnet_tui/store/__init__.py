"""The run store: every file a run keeps on disk, how it is named, written and read back."""
