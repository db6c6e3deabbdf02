# Two entry points: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The torch pair this machine uses (CUDA builds that also run on the CPU). GPU images that ship
# their own torch can override: make TORCH_SPEC="" install
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
OPENCV_CONTRIB := $(shell grep -i '^opencv-contrib-python-headless==' constraints.txt)
DATA := data/shapes
DEMO_CONFIG := configs/faster_rcnn/shapes.yaml
DEMO_OUT := runs/demo
# The shapes stand-in for ImageNet pre-training: a half-width ResNet-18 classifier of shape crops, whose
# backbone seeds the YOLO and FCN shapes configs (their model.backbone.weights)
CROPS := data/shape_crops
SHAPES_BACKBONE := runs/classifier_shape_crops/last.pt

.PHONY: install demo test dataset shapes-backbone docs clean gpu-wheels gpu-check

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(TORCH_SPEC),$(PY) -m pip install -q $(TORCH_SPEC))
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	# opencv-python-headless (via albumentations) and the contrib build share the cv2 package:
	# re-install contrib last so cv2.ximgproc is always there, whatever order pip chose.
	$(PY) -m pip install -q --force-reinstall --no-deps "$(OPENCV_CONTRIB)"
	$(PY) tools/check_install.py
	touch $@

$(DATA)/annotations/instances_val.json: | install
	$(PY) tools/make_dataset.py shapes --output-dir $(DATA)

dataset: $(DATA)/annotations/instances_val.json

$(CROPS)/.complete: | install
	$(PY) tools/make_dataset.py shape-crops --output-dir $(CROPS)
	touch $@

$(SHAPES_BACKBONE): | $(CROPS)/.complete
	$(PY) tools/train.py configs/classification/shape_crops_resnet18.yaml --overwrite

shapes-backbone: $(SHAPES_BACKBONE)

demo: install dataset
	$(PY) tools/train.py $(DEMO_CONFIG) --output-dir $(DEMO_OUT) --overwrite
	$(PY) tools/eval.py $(DEMO_CONFIG) --checkpoint $(DEMO_OUT)/last.pt --output-dir $(DEMO_OUT)/eval
	$(PY) tools/infer.py $(DEMO_CONFIG) --checkpoint $(DEMO_OUT)/last.pt \
		--input $(DATA)/val --limit 16 --output-dir $(DEMO_OUT)/predictions --overwrite
	@echo "demo done: metrics in $(DEMO_OUT)/eval/metrics.json, pictures in $(DEMO_OUT)/predictions"

# The suite over every core (pytest-xdist; tests/conftest.py gives each worker its share of the threads)
TEST_WORKERS ?= auto
test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS)

# The documentation site (mkdocs.yml over docs/): built offline into site/, any broken link an error
docs: install
	$(PY) -m pip install -q -c constraints.txt -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# The GPU check (docs/gpu.md). gpu-wheels, here: wheels for the GPU image's Python of what that image lacks (it has
# its own torch, torchvision, numpy, scipy, OpenCV, matplotlib, ...), pinned by constraints.txt, about 14 MiB to
# carry with the working tree. gpu-check, there: installs them with no network, then runs the check.
GPU_WHEELS := .gpu-wheels
GPU_PYTHON_VERSION ?= 3.12
GPU_WHEEL_PACKAGES := pycocotools faster-coco-eval albumentations albucore pydantic pydantic-core annotated-types \
	typing-inspection typing-extensions stringzilla simsimd ImageHash PyWavelets
GPU_PLATFORMS := $(foreach p,manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1,--platform $(p)_x86_64)

gpu-wheels:
	rm -rf $(GPU_WHEELS)
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version $(GPU_PYTHON_VERSION) \
		--implementation cp $(GPU_PLATFORMS) -c constraints.txt -d $(GPU_WHEELS) $(GPU_WHEEL_PACKAGES)
	du -sh $(GPU_WHEELS)

gpu-check:
	bash tools/gpu_check.sh

clean:
	rm -rf $(DEMO_OUT) $(DATA) $(CROPS)
