# Build and install the cloudha OCF resource agents.
#   make                      build the agents (release)
#   make install [DESTDIR=d]  build, then install under d/usr/lib/ocf/resource.d/ (and
#                             the fence agent as d/usr/sbin/fence_cloudha, with its man page)
#   make install-files        install already-built binaries from $(BUILT) (no cargo: packaging, tests)
#   make uninstall [DESTDIR=d]

PREFIX   ?= /usr
DESTDIR  ?=
CARGO    ?= cargo
# Where cargo put the binaries: honours CARGO_TARGET_DIR, as cargo does.
BUILT    ?= $(or $(CARGO_TARGET_DIR),target)/release
AGENTS   := anchorip floatip haproxy bgpip
# The fence agent: where pacemaker-fenced looks for fence_* agents, with its man page.
FENCE    := fence_cloudha
SBINDIR  := $(DESTDIR)$(PREFIX)/sbin
MAN8DIR  := $(DESTDIR)$(PREFIX)/share/man/man8
OCFDIR   := $(DESTDIR)$(PREFIX)/lib/ocf/resource.d
# Agents that resolve no host names are linked statically: no dynamic loader, about 1 ms less
# per action (BENCHMARKS.md). Built for the explicit host target, so that the flag reaches
# neither build scripts nor the other agents, then copied to $(BUILT) with the rest.
STATIC   := anchorip
HOST     := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
TARGET   := $(or $(CARGO_TARGET_DIR),target)

.PHONY: all build install install-files uninstall test demo clean

all: build

# Each agent alone: built together, cargo would unify features and give anchorip floatip's TLS.
build:
	for a in $(filter-out $(STATIC),$(AGENTS)) $(FENCE); do $(CARGO) build --release --locked -p $$a || exit 1; done
	for a in $(STATIC); do \
	  RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --locked -p $$a --target $(HOST) || exit 1; \
	  install -D -m 0755 $(TARGET)/$(HOST)/release/$$a $(BUILT)/$$a || exit 1; \
	done

install: build install-files

install-files:
	install -d -m 0755 $(OCFDIR)/cloudha
	for a in $(AGENTS); do install -m 0755 $(BUILT)/$$a $(OCFDIR)/cloudha/$$a; done
	# The tutorial's ocf:digitalocean:floatip, answered by this floatip (same parameters).
	install -d -m 0755 $(OCFDIR)/digitalocean
	ln -sfn ../cloudha/floatip $(OCFDIR)/digitalocean/floatip
	install -D -m 0755 $(BUILT)/$(FENCE) $(SBINDIR)/$(FENCE)
	install -D -m 0644 docs/$(FENCE).8 $(MAN8DIR)/$(FENCE).8

uninstall:
	for a in $(AGENTS); do rm -f $(OCFDIR)/cloudha/$$a; done
	rm -f $(OCFDIR)/digitalocean/floatip
	rm -f $(SBINDIR)/$(FENCE) $(MAN8DIR)/$(FENCE).8
	-rmdir $(OCFDIR)/cloudha $(OCFDIR)/digitalocean 2>/dev/null

test:
	bash scripts/test.sh

demo:
	bash scripts/demo.sh

clean:
	$(CARGO) clean
