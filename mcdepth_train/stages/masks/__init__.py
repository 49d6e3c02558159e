"""Masks stage (paper 4.3): ``rules`` (pure mask rules), ``instances`` (three instance sources),
``ground`` (ground net), ``run`` (the stage over a run: ``run_masks``)."""
