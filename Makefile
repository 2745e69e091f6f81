# podwire — see README.md. `make run` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PREFIX ?= /usr/local
DESTDIR ?=
CNI_BIN_DIR ?= /opt/cni/bin
CNI_CONF_DIR ?= /etc/cni/net.d
PYTEST_ARGS ?=

.PHONY: setup run demo test test-unit lint vm-test install uninstall bench clean deb

setup:
	@VENV=$(VENV) packaging/setup.sh

# The node stack in the foreground (podwire-cnid, and the other daemons as they arrive); once it is
# up, two pods are wired and ping each other through it.  Ctrl-C stops everything cleanly.
run: setup install
	$(PY) packaging/run_stack.py --prefix $(DESTDIR)$(PREFIX) \
		--after "$(PY) -m cni.demo --conf-dir $(DESTDIR)$(CNI_CONF_DIR) --bin-dir $(DESTDIR)$(CNI_BIN_DIR)"

# The stack, then NetworkPolicy at work on two pods run through podwire-ctl (packaging/demo.py;
# DEMO_IMAGE= a busybox the shim can pull); stops the stack it started.  Exit status: the demo's.
demo: setup install
	$(PY) packaging/run_stack.py --prefix $(DESTDIR)$(PREFIX) --exit \
		--after "$(PY) packaging/demo.py --ctl $(DESTDIR)$(PREFIX)/bin/podwire-ctl --netpol $(DESTDIR)$(PREFIX)/bin/podwire-netpol"

# make deb's build and check tools; mmdebstrap makes the throwaway root the .deb's test installs into.
DEB_APT := debhelper lintian mmdebstrap

test: setup
	@EXTRA_APT="$(DEB_APT)" VENV=$(VENV) packaging/setup.sh
	$(PY) -m pytest $(PYTEST_ARGS)

# Static checks over the product code (rules and reasons in pyproject.toml [tool.ruff]).
lint: setup
	$(PY) -m ruff check cni cri netpol
	$(PY) -m mypy netpol cni cri

test-unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# The root suites in a throwaway Debian VM (systemd as PID 1, cgroup v2 unless VM_CGROUP=v1); the
# image is built on first use and cached under build/vm.  VM_SUITE= picks tests (tests/vm/run.py).
vm-test: setup
	@EXTRA_APT="qemu-system-x86 qemu-utils mmdebstrap e2fsprogs" VENV=$(VENV) packaging/setup.sh
	$(PY) tests/vm/run.py

install: setup
	@DESTDIR=$(DESTDIR) PREFIX=$(PREFIX) CNI_BIN_DIR=$(CNI_BIN_DIR) CNI_CONF_DIR=$(CNI_CONF_DIR) \
		packaging/install.sh install

# The Debian package, built by dpkg-buildpackage (packaging/debian/) and checked by lintian, into
# build/deb/.  DEB_VERSION= sets its version (default: packaging/debian/changelog's).
deb: setup
	@EXTRA_APT="$(DEB_APT)" VENV=$(VENV) packaging/setup.sh
	@PY=$(PY) packaging/build_deb.sh

uninstall:
	@DESTDIR=$(DESTDIR) PREFIX=$(PREFIX) CNI_BIN_DIR=$(CNI_BIN_DIR) CNI_CONF_DIR=$(CNI_CONF_DIR) \
		packaging/install.sh uninstall

bench: setup
	@set -e; for b in tests/bench/bench_*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
