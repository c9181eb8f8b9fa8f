"""The container spec survives the JSON trip to the monitor's starter process unchanged."""

from __future__ import annotations

from dockyard.core.spec import (
    ContainerSpec,
    IdMapping,
    MountSpec,
    NamespaceSpec,
    ProcessSpec,
    Resources,
    User,
)


def test_round_trip_keeps_every_field() -> None:
    spec = ContainerSpec(
        id="a" * 64,
        rootfs="/var/lib/dockyard/storage/vfs/dir/x",
        process=ProcessSpec(
            args=("/bin/sh", "-c", "echo hi"),
            env=("PATH=/bin",),
            cwd="/srv",
            user=User(uid=1000, gid=1000, additional_gids=(10, 20)),
            terminal=True,
            capabilities=("CAP_CHOWN", "CAP_KILL"),
            no_new_privileges=True,
            seccomp_profile="/usr/share/containers/seccomp.json",
            rlimits=(("RLIMIT_NOFILE", 1024, 4096),),
        ),
        hostname="box",
        mounts=(MountSpec("/proc", "proc", "proc", ("nosuid", "nodev")),),
        namespaces=(NamespaceSpec("pid"), NamespaceSpec("network", "/run/dockyard/netns/x")),
        readonly_rootfs=True,
        masked_paths=("/proc/kcore",),
        readonly_paths=("/proc/sys",),
        sysctls=(("net.ipv4.ip_forward", "1"),),
        resources=Resources(memory=1 << 20, cpus=0.5, pids=10),
        uid_mappings=(IdMapping(0, 100000, 65536),),
        gid_mappings=(IdMapping(0, 100000, 65536),),
        init="/usr/bin/tini",
        cgroup_path="dockyard/x",
        state_dir="/run/dockyard/containers/x",
    )
    assert ContainerSpec.from_json(spec.to_json()) == spec
    assert spec.namespace("network") == NamespaceSpec("network", "/run/dockyard/netns/x")
    assert spec.namespace("user") is None
