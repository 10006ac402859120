# One entry point for building: static musl binaries for x86_64 and aarch64 into
# files/bin/<arch>/ (where the action plugins take them from), then the collection tarball.
# `make test` runs every test; `make demo` the main job.
ARCHES   := x86_64 aarch64
TARGETS  := $(addsuffix -unknown-linux-musl,$(ARCHES))
MODULES  := nm_bridge macvtap_link libvirt_net domain_iface net_info
VERSION  := $(shell sed -n 's/^version: *//p' galaxy.yml)
TARBALL  := kvmnet-network-$(VERSION).tar.gz
GALAXY   := $(shell [ -x .venv/bin/ansible-galaxy ] && echo .venv/bin/ansible-galaxy || echo ansible-galaxy)

.PHONY: build collection test demo bench clean target

target:
	@for t in $(TARGETS); do rustup target list --installed 2>/dev/null | grep -qx $$t || rustup target add $$t; done

# aarch64 links with rust-lld (.cargo/config.toml): no cross compiler needed.
build: target
	cargo build --release $(addprefix --target ,$(TARGETS)) $(addprefix -p ,$(MODULES))
	@for a in $(ARCHES); do for m in $(MODULES); do \
	  install -D -m 0755 target/$$a-unknown-linux-musl/release/$$m files/bin/$$a/$$m; done; done
	@ls -l $(foreach a,$(ARCHES),$(addprefix files/bin/$(a)/,$(MODULES)))

collection: build
	rm -f kvmnet-network-*.tar.gz
	$(GALAXY) collection build --force --output-path . .
	@echo "built $(TARBALL)"

test:
	tests/run-all

demo:
	tests/demo

bench:
	bench/run

clean:
	cargo clean
	rm -rf kvmnet-network-*.tar.gz files/bin
