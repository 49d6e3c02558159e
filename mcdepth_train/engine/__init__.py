"""Training engine shared by all stages: loop, checkpoints, hooks, distributed."""
