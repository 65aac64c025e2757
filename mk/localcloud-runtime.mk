# The local cloud's instance runtime: instances run the host's sshd, sudo and python3 from a
# read-only /usr under overlayfs, in namespaces made by util-linux. nftables forwards port 22
# of instance addresses when the host's own sshd holds 0.0.0.0:22.
DEB_PACKAGES += openssh-server openssh-client sudo python3 util-linux passwd nftables

.PHONY: localcloud-runtime-test localcloud-runtime-bench

localcloud-runtime-test: venv system-check
	$(BIN)/pytest tests/integration/localcloud/test_runtime.py tests/integration/localcloud/test_runtime_layers.py

localcloud-runtime-bench: venv system-deps
	$(BIN)/python benchmarks/localcloud_runtime.py
