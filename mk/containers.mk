# Apptainer images (containers/*.def) and their end-to-end check. Included by the Makefile.
#   make containers                 build containers/pysim-{cpu,gpu}.sif (gpu needs a registry)
#   make containers CONTAINERS=cpu  only the CPU image (Debian + PyPI, no registry needed)
#   make test-containers            build the CPU image, run the test workflow in it and compare
#                                   with a run without containers (slow: not part of `make test`)
# Without apptainer on the PATH, a private one is provisioned (as root) by scripts/apptainer-root.sh.
CONTAINERS ?= cpu gpu
# zstd: ~5x faster to build than apptainer's default gzip -9 at a similar size (needs squashfuse
# or a kernel with squashfs zstd, Linux >= 4.14); set it empty for gzip images.
APPTAINER_SQUASH_ARGS ?= -comp zstd -Xcompression-level 3
APPTAINER ?= $(shell command -v apptainer 2>/dev/null)
ifeq ($(APPTAINER),)
APPTAINER := $(ROOT)/scripts/apptainer
APPTAINER_SETUP := $(ROOT)/scripts/apptainer-root.sh provision
APPTAINER_BUILD_FLAGS ?= --fakeroot
else
APPTAINER_SETUP := true
APPTAINER_BUILD_FLAGS ?= $(if $(filter 0,$(shell id -u)),,--fakeroot)
endif

.PHONY: containers test-containers setup-apptainer

containers: $(foreach c,$(CONTAINERS),containers/pysim-$(c).sif)

setup-apptainer:
	@$(APPTAINER_SETUP)

containers/pysim-%.sif: containers/pysim-%.def containers/constraints.txt pyproject.toml
	@$(APPTAINER_SETUP)
	rm -f $@.partial
	nice $(APPTAINER) build $(APPTAINER_BUILD_FLAGS) \
		$(if $(strip $(APPTAINER_SQUASH_ARGS)),--mksquashfs-args "$(APPTAINER_SQUASH_ARGS)") $@.partial $<
	mv $@.partial $@

test-containers: setup
	scripts/test-containers.sh
