#!/usr/bin/env python3
"""A synthetic source tree from a fixed seed (issue 10 item 6), and its 1 % edit.

    gen_tree.py create DIR [--files N] [--total-mib M] [--seed S]
    gen_tree.py edit DIR [--percent P] [--seed S]

Sizes: most files small (source-like, 1-64 KiB), some 64 KiB-2 MiB, a few large (≥ 16 MiB);
--total-mib is a floor: when the drawn sizes fall short the large files grow to reach it, and
when they exceed it nothing shrinks (20,000 files draw about 3.7 GiB, 500 files 108 MiB). Contents are lines of words drawn from a fixed vocabulary
(compressible like source code) with some random binary files, in nested directories up to 6
deep. The same arguments give the same bytes everywhere (Python's `random` with a seed is
stable across versions for `random()`/`randrange()`/`choice()` on integers and sequences).
"""
import argparse, os, random

WORDS = ("fn let mut pub struct impl match return Some None Ok Err self use mod "
         "const static where trait enum loop while for if else break continue true false "
         "unsafe async await move ref type dyn crate super as in "
         "store cell volume mark space snapshot commit tree node entry key value ref cid "
         "hash salt chunk extent offset length mode mtime uid gid path name").split()


def text(rng, size):
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 14))) + "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def create(a):
    rng = random.Random(a.seed)
    total = a.total_mib * 1024 * 1024
    dirs = [""]
    for i in range(max(1, a.files // 40)):
        parent = rng.choice(dirs)
        if parent.count("/") < 6:
            dirs.append(f"{parent}/d{i:04d}" if parent else f"d{i:04d}")
    sizes = []
    for i in range(a.files):
        r = rng.random()
        sizes.append(rng.randrange(1, 64 * 1024) if r < 0.90 else
                     rng.randrange(64 * 1024, 2 * 1024 * 1024) if r < 0.998 else
                     rng.randrange(16, 48) * 1024 * 1024)
    # Scale so the total is reached: grow the large ones.
    short = total - sum(sizes)
    big = [i for i, s in enumerate(sizes) if s >= 16 * 1024 * 1024] or [0]
    for i in big:
        sizes[i] += max(0, short) // len(big)
    written = 0
    for i, size in enumerate(sizes):
        d = os.path.join(a.dir, rng.choice(dirs))
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"f{i:05d}.{rng.choice(['rs', 'md', 'txt', 'bin', 'toml'])}")
        with open(path, "wb") as f:
            if path.endswith(".bin"):
                f.write(rng.randbytes(size))
            else:
                f.write(text(rng, size))
        written += size
    print(f"{a.files} files, {written / 2**20:.0f} MiB in {len(dirs)} directories")


def edit(a):
    rng = random.Random(a.seed + 1)
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(a.dir) for f in fs)
    chosen = rng.sample(files, max(1, len(files) * a.percent // 100))
    for p in chosen:
        with open(p, "r+b") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(rng.randrange(0, max(1, size)))
            f.write(b"edited line " + str(rng.randrange(10**9)).encode() + b"\n")
    print(f"edited {len(chosen)} of {len(files)} files")


ap = argparse.ArgumentParser()
ap.add_argument("cmd", choices=["create", "edit"])
ap.add_argument("dir")
ap.add_argument("--files", type=int, default=20000)
ap.add_argument("--total-mib", type=int, default=1100)
ap.add_argument("--percent", type=int, default=1)
ap.add_argument("--seed", type=int, default=2026)
a = ap.parse_args()
create(a) if a.cmd == "create" else edit(a)
