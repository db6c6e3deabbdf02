"""COCO, VOC and the synthetic shapes dataset; import from the submodules (coco, voc, shapes)."""
