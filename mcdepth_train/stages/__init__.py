"""Pipeline stages, one module each: stage1, masks, objects, dsa, pseudo labels, stage3."""
