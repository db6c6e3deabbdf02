from detseg.structures.batch import Batch
from detseg.structures.instances import Instances

__all__ = ["Batch", "Instances"]
