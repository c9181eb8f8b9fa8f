"""Thin wrappers over the Linux system calls a container engine needs, for Dockyard and third parties.

Each module covers one job and maps a failing call to `OSError` with its errno (the same exception
the `os` module raises), so callers translate failures into Dockyard's errors at their own boundary:

    libc          the C library handle and the errno check every wrapper shares
    namespaces    unshare, setns and the CLONE_* flag of each namespace kind
    idmaps        user-namespace id maps: /etc/subuid ranges, newuidmap, single-id maps
    mounts        mount, umount2, pivot_root and mount-option parsing
    paths         openat2 with RESOLVE_IN_ROOT: open or create paths without leaving a root
    capabilities  capability names, the bounding set, capset
    process       prctl switches, close_range, the controlling terminal, signal dispositions
    devices       device nodes for a container's /dev
    netdev        bringing a network interface up (SIOCSIFFLAGS)
    cgroups       cgroup v1 / v2 discovery and one container's cgroups
    seccomp       containers-common seccomp profiles: rules, and a libseccomp filter from them
    seccomp_cache the BPF program libseccomp compiled for a profile, kept per profile and loaded

The modules import only the standard library (libseccomp's binding is imported by the function
that builds a filter), so everything a container's first process runs can be imported before it
enters the container.
"""
