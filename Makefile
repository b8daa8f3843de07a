# The two commands of the README's quick start.
#   make demo   set up, then fine-tune the bundled model in QEMU (the main job)
#   make test   set up, then run the whole test suite
.PHONY: setup demo test

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/medyate demo

test: setup
	.venv/bin/python -m pytest -q
