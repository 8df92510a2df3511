"""Model building: the fitted pipeline a train config names (pipeline), the seeded
hyperparameter search over it (search), and its operating threshold and test metrics
(evaluation)."""
