"""Pseudo-label stage (paper Eq. 5): ``labels`` (composition, storage, inspection), ``run`` (the
stage over a run: ``run_pseudo``)."""
