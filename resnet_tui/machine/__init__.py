"""The machine and process: the CPU, what training uses of it, and file descriptor 2."""
