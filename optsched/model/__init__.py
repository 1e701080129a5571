"""The power-law random-feature model: the problem, its modes, and the theory of its optimum."""
