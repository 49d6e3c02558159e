"""Objects stage (paper 4.2, Eqs. 11-14): ``net`` (the object network), ``geometry`` (mask-multiplied
frames, object motion, parallax), ``run`` (the stage over a run: ``run_objects``)."""
