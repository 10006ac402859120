# One entry point for building: static musl binaries into plugins/modules/, then the
# collection tarball. `make test` runs every test; `make demo` the main job.
TARGET   := x86_64-unknown-linux-musl
MODULES  := nm_bridge macvtap_link libvirt_net domain_iface net_info
VERSION  := $(shell sed -n 's/^version: *//p' galaxy.yml)
TARBALL  := kvmnet-network-$(VERSION).tar.gz
GALAXY   := $(shell [ -x .venv/bin/ansible-galaxy ] && echo .venv/bin/ansible-galaxy || echo ansible-galaxy)

.PHONY: build collection test demo bench clean target

target:
	@rustup target list --installed 2>/dev/null | grep -qx $(TARGET) || rustup target add $(TARGET)

build: target
	cargo build --release --target $(TARGET) $(addprefix -p ,$(MODULES))
	@for m in $(MODULES); do install -m 0755 target/$(TARGET)/release/$$m plugins/modules/$$m; done
	@ls -l $(addprefix plugins/modules/,$(MODULES))

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
	rm -f kvmnet-network-*.tar.gz $(addprefix plugins/modules/,$(MODULES))
