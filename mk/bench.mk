# Benchmarks that are not part of `make test`.
# The bake benchmark's baseline playbook reaches its builder with ansible.builtin.ssh (OpenSSH client).
DEB_PACKAGES += openssh-client

.PHONY: bench-bake

# A whole bake with 3 copy regions, bake.yml against a plain amazon.aws/community.aws playbook,
# on a local cloud of its own (needs root); BENCH_BAKE_ROUNDS rounds of each (default 2).
BENCH_BAKE_ROUNDS ?= 2
bench-bake: venv system-deps
	$(BIN)/python benchmarks/bake.py --rounds $(BENCH_BAKE_ROUNDS)
