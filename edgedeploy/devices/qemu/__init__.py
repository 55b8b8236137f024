"""The ``qemu`` transport (arm64-emu): LiteRT's real aarch64 build, run under qemu user-mode
emulation, for correctness on ARM kernels (its latency is flagged: not device latency).

Set-up (`edgedeploy devices setup arm64-emu`) builds a private aarch64 root in the cache:
Debian bookworm's arm64 CPython 3.11 and the libraries it needs, fetched from the apt
mirror this machine is configured with (index checked against InRelease, every .deb
against the index's SHA256), plus the aarch64 wheels of numpy and ai-edge-litert at the
host's versions. No root-wide change: no dpkg architecture, no binfmt; qemu is run
explicitly with ``-L`` pointing at the root. Then every model runs through
``arm64_guest.py`` inside the emulated Python.

- ``guest.py``: where the root is, and how qemu runs its Python (shared by both halves);
- ``apt.py``, ``unpack.py``, ``rootfs.py``: the set-up (signed index, .debs, wheels);
- ``runner.py``: models run in the root (EmulatedLiteRTRunner, the emulated benchmark);
- ``driver.py``: the DeviceDriver that the transport table names.
"""
