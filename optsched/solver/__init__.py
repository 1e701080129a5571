"""The optimal-control solver: controls, baselines, L-BFGS, and ``solve``."""
