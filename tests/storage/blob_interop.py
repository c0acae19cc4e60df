#!/usr/bin/env python3
"""The official Azure Blob client (azure-storage-blob) on the other side of blob_interop_test.cc.

  verify   --manifest M: lists the blobs under --prefix with the official client and checks that
           they are exactly the manifest's files (relative path -> size, sha256), each a block blob
           with the same bytes (streamed, hashed as they arrive).
  upload   --dir D --manifest-out M: writes the interop file set (an empty file, a 300 MiB file,
           names with spaces and non-ASCII characters, nested folders) under D from the official
           client's side, uploads each as a block blob under --prefix (upload_blob: files above
           64 MiB go as staged blocks + a block list) and writes the manifest.

Runs under the project venv's python. Exit 77 when azure-storage-blob is missing.
"""
import argparse
import hashlib
import json
import os
import sys

SKIP = 77


def client(args):
    try:
        from azure.storage.blob import BlobServiceClient
    except ImportError as e:
        print(f"SKIP: azure-storage-blob is not installed in {sys.prefix} ({e}): "
              "run scripts/setup-deps.sh")
        sys.exit(SKIP)
    conn = (f"DefaultEndpointsProtocol=http;AccountName={args.account};AccountKey={args.key};"
            f"BlobEndpoint={args.endpoint};")
    return BlobServiceClient.from_connection_string(conn).get_container_client(args.container)


def verify(args):
    container = client(args)
    with open(args.manifest, encoding="utf-8") as f:
        manifest = json.load(f)
    prefix = args.prefix.rstrip("/") + "/"
    seen = {}
    for props in container.list_blobs(name_starts_with=prefix):
        seen[props.name[len(prefix):]] = props
    problems = []
    for rel in sorted(set(manifest) - set(seen)):
        problems.append(f"missing blob {prefix}{rel}")
    for rel in sorted(set(seen) - set(manifest)):
        problems.append(f"unexpected blob {prefix}{rel}")
    for rel in sorted(set(manifest) & set(seen)):
        props, want = seen[rel], manifest[rel]
        if str(props.blob_type) not in ("BlobType.BLOCKBLOB", "BlockBlob"):
            problems.append(f"{rel}: blob type {props.blob_type}, expected a block blob")
        h = hashlib.sha256()
        size = 0
        for chunk in container.download_blob(prefix + rel, max_concurrency=2).chunks():
            h.update(chunk)
            size += len(chunk)
        if size != want["size"] or h.hexdigest() != want["sha256"]:
            problems.append(f"{rel}: got {size} bytes sha256 {h.hexdigest()}, kubetrain uploaded "
                            f"{want['size']} bytes sha256 {want['sha256']}")
        else:
            print(f"azure-storage-blob read {prefix}{rel}: {size} bytes, sha256 matches")
    for p in problems:
        print("MISMATCH", p)
    return 1 if problems else 0


def write_file(path, size, seed):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    h = hashlib.sha256()
    block = hashlib.sha256(seed.encode()).digest() * (1 << 15)  # 1 MiB pattern, varied per MiB
    with open(path, "wb") as f:
        left, n = size, 0
        while left > 0:
            chunk = (n.to_bytes(8, "little") + block)[: min(left, len(block))]
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
            n += 1
    return {"size": size, "sha256": h.hexdigest()}


FILES = {  # relative path -> size
    "empty.bin": 0,
    "big/model-300MiB.bin": 300 << 20,
    "with space/file name with spaces.txt": 1234,
    "unicode/données — 日本語 ü.txt": 4321,
    "nested/a/b/c/deep.txt": 17,
    "also empty/nothing here.txt": 0,
}


def upload(args):
    container = client(args)
    manifest = {}
    prefix = args.prefix.rstrip("/") + "/"
    for rel, size in FILES.items():
        path = os.path.join(args.dir, rel)
        manifest[rel] = write_file(path, size, "azure-storage-blob:" + rel)
        with open(path, "rb") as f:
            container.upload_blob(prefix + rel, f, blob_type="BlockBlob", overwrite=True,
                                  max_concurrency=4)
        print(f"azure-storage-blob uploaded {prefix}{rel}: {size} bytes")
    with open(args.manifest_out, "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["verify", "upload"])
    p.add_argument("--endpoint", required=True)  # http://127.0.0.1:PORT/devstoreaccount1
    p.add_argument("--account", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--container", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--manifest")
    p.add_argument("--dir")
    p.add_argument("--manifest-out")
    args = p.parse_args()
    return verify(args) if args.command == "verify" else upload(args)


if __name__ == "__main__":
    sys.exit(main())
