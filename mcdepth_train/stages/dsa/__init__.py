"""DSA stage (paper 4.2): ``fit`` (training, evaluation, ground-plane geometry), ``run`` (the stage
over a run: ``run_dsa``)."""
