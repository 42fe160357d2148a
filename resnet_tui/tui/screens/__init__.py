"""The dashboard's screens: configs, training, runs, and modal dialogs."""
