# Build and install the cloudha OCF resource agents.
#   make                      build the agents (release)
#   make install [DESTDIR=d]  build, then install under d/usr/lib/ocf/resource.d/
#   make install-files        install already-built binaries from $(BUILT) (no cargo: packaging, tests)
#   make uninstall [DESTDIR=d]

PREFIX   ?= /usr
DESTDIR  ?=
CARGO    ?= cargo
# Where cargo put the binaries: honours CARGO_TARGET_DIR, as cargo does.
BUILT    ?= $(or $(CARGO_TARGET_DIR),target)/release
AGENTS   := anchorip floatip haproxy
OCFDIR   := $(DESTDIR)$(PREFIX)/lib/ocf/resource.d

.PHONY: all build install install-files uninstall test demo clean

all: build

build:
	$(CARGO) build --release --locked $(addprefix -p ,$(AGENTS))

install: build install-files

install-files:
	install -d -m 0755 $(OCFDIR)/cloudha
	for a in $(AGENTS); do install -m 0755 $(BUILT)/$$a $(OCFDIR)/cloudha/$$a; done
	# The tutorial's ocf:digitalocean:floatip, answered by this floatip (same parameters).
	install -d -m 0755 $(OCFDIR)/digitalocean
	ln -sfn ../cloudha/floatip $(OCFDIR)/digitalocean/floatip

uninstall:
	for a in $(AGENTS); do rm -f $(OCFDIR)/cloudha/$$a; done
	rm -f $(OCFDIR)/digitalocean/floatip
	-rmdir $(OCFDIR)/cloudha $(OCFDIR)/digitalocean 2>/dev/null

test:
	bash scripts/test.sh

demo:
	bash scripts/demo.sh

clean:
	$(CARGO) clean
