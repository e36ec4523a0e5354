"""The peer comparison: every recorder as a process tree, measured from outside (see ``compare``)."""
