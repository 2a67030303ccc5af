"""Short weight names -> where the weights live, with the checksum they must have.

An entry is either embedded (a folder of the installed package `s2tf_cli.weights`, i.e. the
repository's top-level weights/) or a Hub repo at a pinned revision. `sha256` is that of
model.safetensors and is verified on every load.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    repo_id: str  # where the same weights are published on the Hub
    revision: str | None = None  # pinned commit for Hub downloads
    embedded: str | None = None  # folder under the package's weights/, if it ships with the package
    sha256: str | None = None  # of model.safetensors
    description: str = ""


DEFAULT_WEIGHTS = "s2tf-real"

REGISTRY: dict[str, RegistryEntry] = {
    "s2tf-real": RegistryEntry(
        name="s2tf-real",
        repo_id="s2tf/s2tf-real",
        embedded="s2tf-real",
        sha256="7a69912b716dec7c3315906096f4465678b49202ab68b8f1eb9753de8d13cae9",
        description="cpu-real preset (64 px), trained by this project on real people's photos and voices; the default",
    ),
    "s2tf-cpu": RegistryEntry(
        name="s2tf-cpu",
        repo_id="s2tf/s2tf-cpu",
        embedded="s2tf-cpu",
        sha256="aab1fbaf22fa81fcab05c3366615e89222be97a66eddc92ce472591c626883a7",
        description="CPU preset (128 px) trained on synthesised corpora; the previous default, and the mouth "
        "teacher of s2tf-real's last stage",
    ),
    "syncnet-cpu": RegistryEntry(
        name="syncnet-cpu",
        repo_id="s2tf/syncnet-cpu",
        embedded="syncnet-cpu",
        sha256="6df59ee84f9aeb6f9a05a618eab374ce0279e89c855b3c159ae07c2ab4a9c912",
        description="the lip-sync expert `s2tf eval --syncnet` scores sync offsets with (an independent judge)",
    ),
    "voice2face-cpu": RegistryEntry(
        name="voice2face-cpu",
        repo_id="s2tf/voice2face-cpu",
        embedded="voice2face-cpu",
        sha256="52e7b4ff5edeb2bf0d2fdf8e1021b4050b257af033e5c3d12517fe0488cd080b",
        description="the Voice2Face-style comparison baseline of `s2tf eval` (faces from voices only)",
    ),
}
