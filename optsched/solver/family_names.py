"""The names of the standard schedule families (:func:`optsched.solver.baselines.family`), in a
module that imports nothing: the command line offers them without loading JAX."""

FAMILIES = ("constant", "power_law", "cosine", "linear", "wsd")
