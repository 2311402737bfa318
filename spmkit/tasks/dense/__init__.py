"""Dense prediction pieces: multi-scale features, FPN wrapper for torchvision's detectors, segmentation
heads (Semantic FPN, UperNet), segmentor, metrics (COCOeval, mIoU) and drawing."""
