# The two commands of the README's quick start.
#   make demo   set up, then fine-tune the bundled model in QEMU (the main job)
#   make test   set up, then run the whole test suite
.PHONY: setup demo test

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/medyate demo

# one worker per core, a test file per worker: a file's fixtures (firmware
# builds, QEMU boards) are built once, and QEMU sessions run side by side
test: setup
	.venv/bin/python -m pytest -q -n auto --dist loadfile
