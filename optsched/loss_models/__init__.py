"""Loss models: what ``solve`` minimises, and how each is fitted to observed runs."""
