#!/usr/bin/env python3
"""Checks docker/Dockerfile against the repository and the build, since no container engine runs
here to build it:

  * every apt package either stage installs is in scripts/setup-deps.sh's list (the same names, so
    the image builds what `make` builds), or is a package of the CUDA base image;
  * every COPY source exists in the repository, and every `COPY --from=build` source is created
    by the build stage;
  * every `cmake --target` of the build stage and every `build/...` path it copies is produced by
    this build (found under the build directory), and every -D option is one CMakeLists.txt knows;
  * the ENTRYPOINT is kubetrain-worker, copied into the image by the build stage and built here.

Usage: dockerfile_test.py SOURCE_DIR BINARY_DIR   (ctest runs it after the build)
"""
import os
import re
import shlex
import sys

CUDA_BASE_PACKAGE = re.compile(r"^(cuda-.*|libcublas.*|libnccl.*|libcudnn.*|libnpp.*|libcusparse.*)$")


def fail(errors, message):
    errors.append(message)


def setup_deps_packages(path):
    text = open(path).read()
    m = re.search(r"^apt_packages=\((.*?)^\)", text, re.S | re.M)
    if not m:
        raise SystemExit(f"{path}: no apt_packages=( ... ) list found")
    body = re.sub(r"#.*", "", m.group(1))
    packages = set(body.split())
    # Added only where the commands are missing: still part of the list.
    for extra in re.findall(r"apt_packages\+=\(([^)]*)\)", text):
        packages.update(extra.split())
    return packages


def instructions(path):
    """(line number, instruction, arguments) with continuation lines joined, comments dropped."""
    out, current, start = [], "", 0
    for n, line in enumerate(open(path), 1):
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if not current:
            start = n
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        word, _, rest = current.partition(" ")
        out.append((start, word.upper(), rest.strip()))
        current = ""
    return out


def apt_installs(run_args):
    """Package names of every `apt-get install` in a RUN line."""
    packages = []
    for command in re.split(r"&&|;|\|\|", run_args):
        words = shlex.split(command)
        if "apt-get" in words and "install" in words:
            for w in words[words.index("install") + 1:]:
                if not w.startswith("-"):
                    packages.append(w)
    return packages


def find_in_build(binary_dir, name):
    for root, dirs, files in os.walk(binary_dir):
        dirs[:] = [d for d in dirs if d not in ("CMakeFiles", "demo-workspace", "Testing")]
        if name in files and os.access(os.path.join(root, name), os.X_OK):
            return os.path.join(root, name)
    return None


def main():
    source_dir, binary_dir = sys.argv[1], sys.argv[2]
    dockerfile = os.path.join(source_dir, "docker", "Dockerfile")
    allowed = setup_deps_packages(os.path.join(source_dir, "scripts", "setup-deps.sh"))
    cmake_lists = open(os.path.join(source_dir, "CMakeLists.txt")).read()
    errors = []
    stages, stage = {}, None
    created_in_build = set()   # absolute paths the build stage creates (mkdir -p / cp targets)
    copied_binaries = {}       # image path -> build-tree source
    entrypoint = None
    checked_packages = 0
    for line, word, args in instructions(dockerfile):
        where = f"docker/Dockerfile:{line}"
        if word == "FROM":
            m = re.search(r"\bAS\s+(\S+)", args, re.I)
            stage = m.group(1) if m else f"stage{len(stages)}"
            stages[stage] = args.split()[0]
        elif word == "RUN":
            for p in apt_installs(args):
                checked_packages += 1
                if p not in allowed and not CUDA_BASE_PACKAGE.match(p):
                    fail(errors, f"{where}: apt package '{p}' is neither in scripts/setup-deps.sh's "
                                 "apt_packages nor a CUDA base-image package: add it there too")
            for command in re.split(r"&&", args):
                words = shlex.split(command)
                if not words:
                    continue
                if words[:2] == ["mkdir", "-p"]:
                    created_in_build.update(words[2:])
                if words[0] == "cmake" and "--target" in words:
                    for target in words[words.index("--target") + 1:]:
                        if target.startswith("-"):
                            break
                        if find_in_build(binary_dir, target) is None:
                            fail(errors, f"{where}: cmake target '{target}' is not built by "
                                         f"this build (nothing called that under {binary_dir})")
                if words[0] == "cmake":
                    for w in words:
                        m = re.match(r"-D(KUBETRAIN_\w+)=", w)
                        if m and m.group(1) not in cmake_lists:
                            fail(errors, f"{where}: -D{m.group(1)} is not an option in "
                                         "CMakeLists.txt")
                if words[0] == "cp":
                    sources, target = words[1:-1], words[-1]
                    for src in sources:
                        if src.startswith("-"):
                            continue
                        if src.startswith("build/"):
                            built = os.path.join(binary_dir, src[len("build/"):])
                            if not os.path.isfile(built):
                                fail(errors, f"{where}: '{src}' is not produced by the build "
                                             f"({built} does not exist)")
                        copied_binaries[os.path.join(target, os.path.basename(src))] = src
                if words[0].startswith("docker/") or words[0].startswith("scripts/"):
                    if not os.path.exists(os.path.join(source_dir, words[0])):
                        fail(errors, f"{where}: script '{words[0]}' is not in the repository")
        elif word == "COPY":
            words = shlex.split(args)
            from_stage = None
            rest = []
            for w in words:
                if w.startswith("--from="):
                    from_stage = w.split("=", 1)[1]
                elif not w.startswith("--"):
                    rest.append(w)
            sources = rest[:-1]
            for src in sources:
                if from_stage is None:
                    if not os.path.exists(os.path.join(source_dir, src)):
                        fail(errors, f"{where}: COPY source '{src}' does not exist in the "
                                     "repository")
                elif from_stage not in stages:
                    fail(errors, f"{where}: COPY --from={from_stage}: no such stage")
                elif not any(c == src or c.startswith(src.rstrip("/") + "/")
                             for c in list(created_in_build) + list(copied_binaries)):
                    fail(errors, f"{where}: COPY --from={from_stage} '{src}': the build stage "
                                 "never creates it")
        elif word == "ENTRYPOINT":
            m = re.match(r"\[\s*\"([^\"]+)\"", args)
            entrypoint = m.group(1) if m else shlex.split(args)[0]

    if len(stages) < 2:
        fail(errors, "docker/Dockerfile: expected a multi-stage build (build + runtime)")
    if entrypoint is None:
        fail(errors, "docker/Dockerfile: no ENTRYPOINT")
    else:
        name = os.path.basename(entrypoint)
        if name != "kubetrain-worker":
            fail(errors, f"docker/Dockerfile: ENTRYPOINT is '{entrypoint}', expected kubetrain-worker")
        if entrypoint not in copied_binaries:
            fail(errors, f"docker/Dockerfile: ENTRYPOINT '{entrypoint}' is not copied into the "
                         "image by the build stage")
        if not os.path.isfile(os.path.join(binary_dir, "bin", name)):
            fail(errors, f"ENTRYPOINT binary {name} is not built here ({binary_dir}/bin/{name})")
    if "USER root" in open(dockerfile).read() or not re.search(r"^USER\s+\S+", open(dockerfile).read(), re.M):
        fail(errors, "docker/Dockerfile: the image must end as a non-root USER")
    if checked_packages == 0:
        fail(errors, "docker/Dockerfile: found no apt-get install to check (parser out of date?)")

    for e in errors:
        print("FAIL", e)
    print(f"dockerfile_test: {len(stages)} stages, {checked_packages} apt packages, "
          f"{len(copied_binaries)} binaries, entrypoint {entrypoint}: "
          f"{'OK' if not errors else str(len(errors)) + ' problem(s)'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
