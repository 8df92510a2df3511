"""A/B tests and shadow runs of a challenger release, declared in params (`experiment:`):
the arm assignment shared by the service and the analysis (`assign`), the always-valid
sequential statistics (`sequential`) and `mlgitops ab status` (`status`, `report`)."""
