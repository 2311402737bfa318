"""Training, whatever the task: the loop (``loop``) and its parts (step, optimiser, sampler, finite checks,
reporting, retention), run folders and checkpoints, launch and DDP. Tasks plug in through
``spmkit.tasks.base.Task``."""
