"""What the dense tasks share: multi-scale features, the FPN wrapper for torchvision's detectors, conv-norm-act
blocks, the backbone builder and its checks (``common``) and drawing. Each task's own heads, models and
metrics live in its folder (``tasks/detection``, ``tasks/segmentation``)."""
