"""Evaluation and prediction through the task contract: a run's model rebuilt from its checkpoint
(``run_model``), ``spmkit eval`` (``evaluate``), ``spmkit predict`` (``predict``) and the device checks."""
