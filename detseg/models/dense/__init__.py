"""Dense (one-stage) heads: predictions at every cell of feature maps, YOLO and SSD."""
