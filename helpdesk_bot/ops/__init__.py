"""What people run: the command line, the demo and the configuration check."""
