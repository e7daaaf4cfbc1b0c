#!/usr/bin/env python3
"""The xz decoders, side by side: the CPU time to decompress every module of a tree once.

Run by a person (not a test):

    python benchmarks/xzdecode.py DIR                       # one run, Python's lzma
    python benchmarks/xzdecode.py --decoder lzma_mt DIR     # one run, another decoder
    python benchmarks/xzdecode.py --survey --rounds 5 DIR   # every decoder found, alternating rounds, medians

DIR is a module directory (every ``*.ko.xz`` under it) or a list of files.  One run reads
every file into memory first, then decompresses each once and reports the process's CPU
time (user + system, all threads: ``time.process_time``) and the wall time of that loop
alone, without the interpreter's start, the imports or the reads.

Decoders (``--decoder``):
  lzma            Python's lzma on the liblzma the dynamic loader finds (the system's)
  lzma:PATH       Python's lzma on the liblzma at PATH (the process runs with a directory holding
                  only liblzma.so.5 -> PATH first on LD_LIBRARY_PATH), e.g. Debian 13's liblzma 5.8
                  from the conformance cache
  ctypes:PATH     lzma_stream_buffer_decode of the liblzma at PATH, called through ctypes
  lzma_mt         the lzma-mt wheel (a Cython lzma with a bundled liblzma), one thread a stream
  cramjam         cramjam.xz (Rust bindings, bundled liblzma), C backend
  cramjam-rust    cramjam.xz with CRAMJAM_BACKEND=pure-rust (the cramjam-pure-rust wheel)
  moddeps         moddeps' own decompress() (Python's lzma in pieces, with the size bound, a
                  deadline and a memory hold), from the checkout this script is in: what moddeps
                  adds to the floor per file
  moddeps-c       moddeps' C decoder (moddeps/read/_xz.c, from this checkout, built in place): one
                  liblzma stream kept per thread and re-initialised for each module, the whole file
                  decoded in one call into an output region that the next modules reuse -- the same
                  liblzma as ``lzma`` (the one _xz was linked with), without a fresh decoder per module
  none            read the files only (a baseline for instruction counts)

``--threads N`` decompresses in N threads (largest file first): the wall time then shows
whether the decoder releases the GIL.  ``--survey`` runs each decoder in a process of its
own (``--python`` picks the interpreter, e.g. a venv holding the wheels), alternating
decoders round after round, and prints medians; with ``--callgrind`` it also counts the
instructions of each decoder once (valgrind, deterministic), on every ``--every``-th file.

The decompression floor of ``bench_depmod.py`` is this script's ``lzma`` run: its CPU
time divided by the cores; its second floor, the reused-stream one, is the ``moddeps-c``
run (the same liblzma, a decoder kept from module to module, as moddeps' loaders now decode).
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

Decode = Callable[[bytes, int], int]  # decompresses one file of the declared size, returns the output's length

ALL = ("lzma", "ctypes", "lzma_mt", "cramjam", "cramjam-rust")


def mapped(fragment: str) -> set[str]:
    """The paths of the shared objects mapped into this process whose names hold ``fragment``."""
    with open("/proc/self/maps") as f:
        paths = {line.split(maxsplit=5)[-1].strip() for line in f if "/" in line}
    return {p for p in paths if fragment in os.path.basename(p)}


def one_mapped(fragment: str) -> str:
    found = mapped(fragment)
    if len(found) != 1:
        raise SystemExit(f"expected one {fragment} in this process, found {sorted(found) or 'none'}")
    return found.pop()


def liblzma_version(path: str) -> str:
    """``lzma_version_string()`` of the liblzma (or the object bundling one) at ``path``."""
    lib = ctypes.CDLL(path)
    lib.lzma_version_string.restype = ctypes.c_char_p
    return str(lib.lzma_version_string().decode())


def bundled_version(path: str) -> str:
    """The xz release whose sources built an object (its embedded source paths), or "?"."""
    data = Path(path).read_bytes()
    found = sorted(set(re.findall(rb"xz-(5\.\d+(?:\.\d+)?)/src/liblzma", data)))
    return ", ".join(v.decode() for v in found) or "?"


def declared_size(data: bytes) -> int:
    """The uncompressed size an xz file's index declares (taken before the timing: the
    decoders that want an output buffer of the right size get it)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from moddeps.read.compression import xz_declared_size

    sys.path.pop(0)
    size = xz_declared_size(data)
    if size is None:
        raise SystemExit("an xz file without a readable index")
    return size


def python_lzma(wanted: str | None) -> tuple[Decode, str]:
    import lzma

    def decode(data: bytes, size: int) -> int:
        return len(lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data))

    path = one_mapped("liblzma")
    if wanted and os.path.realpath(path) != os.path.realpath(wanted):
        raise SystemExit(f"_lzma uses {path}, not {wanted}")
    return decode, f"Python lzma, liblzma {liblzma_version(path)} ({path})"


class _LzmaStream(ctypes.Structure):
    pass


def ctypes_liblzma(path: str) -> tuple[Decode, str]:
    lib = ctypes.CDLL(path)
    fn = lib.lzma_stream_buffer_decode
    # lzma_ret lzma_stream_buffer_decode(uint64_t *memlimit, uint32_t flags, const lzma_allocator *,
    #     const uint8_t *in, size_t *in_pos, size_t in_size, uint8_t *out, size_t *out_pos, size_t out_size)
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_uint32, ctypes.c_void_p, ctypes.c_char_p,
                   ctypes.POINTER(ctypes.c_size_t), ctypes.c_size_t, ctypes.c_void_p,
                   ctypes.POINTER(ctypes.c_size_t), ctypes.c_size_t]
    concatenated = 0x08

    def decode(data: bytes, size: int) -> int:
        out = ctypes.create_string_buffer(size)
        memlimit = ctypes.c_uint64(1 << 27)
        in_pos, out_pos = ctypes.c_size_t(0), ctypes.c_size_t(0)
        ret = fn(ctypes.byref(memlimit), concatenated, None, data, ctypes.byref(in_pos), len(data), out,
                 ctypes.byref(out_pos), size)
        if ret != 0:
            raise SystemExit(f"lzma_stream_buffer_decode: {ret}")
        return out_pos.value

    return decode, f"ctypes lzma_stream_buffer_decode, liblzma {liblzma_version(path)} ({path})"


def lzma_mt() -> tuple[Decode, str]:
    import lzma_mt as mt  # type: ignore[import-not-found]

    def decode(data: bytes, size: int) -> int:
        return len(mt.LZMADecompressor(mt.FORMAT_XZ, threads=1).decompress(data))

    so = one_mapped("lzma_mt")
    return decode, f"lzma-mt {mt.__version__}, bundled liblzma {liblzma_version(so)}"


def cramjam(backend: str) -> tuple[Decode, str]:
    os.environ["CRAMJAM_BACKEND"] = backend
    import importlib.metadata

    import cramjam as cj  # type: ignore[import-not-found]

    def decode(data: bytes, size: int) -> int:
        return len(cj.xz.decompress(data, output_len=size))

    dist = "cramjam" if backend == "c" else "cramjam-pure-rust"
    so = one_mapped("cramjam")
    how = f"bundled liblzma {bundled_version(so)}" if backend == "c" else "pure-Rust decoder"
    return decode, f"{dist} {importlib.metadata.version(dist)}, {how}"


def moddeps_decompress() -> tuple[Decode, str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from moddeps.read import compression

    sys.path.pop(0)
    budget = compression.MemoryBudget(1 << 40)

    def decode(data: bytes, size: int) -> int:
        hold = budget.open()
        try:
            return len(compression.decompress(data, "xz", deadline=compression.Deadline(60), hold=hold))
        finally:
            hold.release()

    path = one_mapped("liblzma")
    return decode, f"moddeps decompress() ({compression.__file__}), liblzma {liblzma_version(path)}"


def moddeps_c() -> tuple[Decode, str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    try:
        from moddeps.read import _xz  # type: ignore[attr-defined]
    except ImportError:
        raise SystemExit("moddeps.read._xz is not built in this checkout (python setup.py build_ext --inplace; "
                         "needs lzma.h)") from None
    finally:
        sys.path.pop(0)
    local = threading.local()

    def decode(data: bytes, size: int) -> int:
        dec = getattr(local, "decoder", None)
        if dec is None:
            dec = local.decoder = _xz.Decoder()
        out = dec.decode(data, size, -1.0)
        if not isinstance(out, memoryview):
            raise SystemExit("moddeps.read._xz declined a module (not one stream of its declared size)")
        return len(out)

    return decode, f"moddeps.read._xz, one stream per thread reused, liblzma {_xz.liblzma_version()}"


def decoder(spec: str) -> tuple[Decode, str]:
    name, _, arg = spec.partition(":")
    if name == "lzma":
        return python_lzma(arg or None)
    if name == "ctypes":
        return ctypes_liblzma(arg or "liblzma.so.5")
    if name == "lzma_mt":
        return lzma_mt()
    if name in ("cramjam", "cramjam-rust"):
        return cramjam("c" if name == "cramjam" else "pure-rust")
    if name == "moddeps":
        return moddeps_decompress()
    if name == "moddeps-c":
        return moddeps_c()
    if name == "none":
        return (lambda data, size: 0), "no decoding (reads only)"
    raise SystemExit(f"unknown decoder {spec!r}")


def module_files(paths: list[str], every: int = 1) -> list[str]:
    files: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            files += sorted(str(f) for f in Path(p).rglob("*.ko.xz"))
        else:
            files.append(p)
    return files[::every]


def run_once(spec: str, files: list[str], threads: int) -> dict[str, Any]:
    decode, what = decoder(spec)
    blobs = [Path(f).read_bytes() for f in files]
    declared = [declared_size(b) for b in blobs]
    if spec != "none" and blobs:
        decode(blobs[0], declared[0])  # first call: lazy initialisation (imports, tables) out of the timing
    order = sorted(range(len(blobs)), key=lambda i: -len(blobs[i]))
    sizes = [0] * len(blobs)
    cpu, wall = time.process_time(), time.perf_counter()
    if threads <= 1:
        for i in order:
            sizes[i] = decode(blobs[i], declared[i])
    else:
        lock = threading.Lock()
        it = iter(order)

        def work() -> None:
            while True:
                with lock:
                    i = next(it, None)
                if i is None:
                    return
                sizes[i] = decode(blobs[i], declared[i])

        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"decoder": spec, "what": what, "files": len(blobs), "in_bytes": sum(map(len, blobs)),
            "out_bytes": sum(sizes), "sizes_crc": zlib.crc32(json.dumps(sizes).encode()), "threads": threads,
            "cpu": cpu, "wall": wall}


def child(spec: str, files: list[str], threads: int, python: str) -> dict[str, Any]:
    out = subprocess.run([python, __file__, "--decoder", spec, "--threads", str(threads), "--json", *files],
                         check=True, capture_output=True, text=True, env=decoder_env(spec)).stdout
    return dict(json.loads(out))


def instructions(spec: str, files: list[str], python: str) -> int:
    """Instructions the whole child executes under callgrind (deterministic)."""
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", python, __file__,
                        "--decoder", spec, "--json", *files], capture_output=True, text=True, check=True,
                       env=decoder_env(spec))
    m = re.search(r"Collected : (\d+)", r.stderr)
    if m is None:
        raise SystemExit(f"no instruction count from callgrind for {spec}:\n{r.stderr[-2000:]}")
    return int(m.group(1))


def found_decoders(python: str, extra: list[str]) -> list[str]:
    """The decoders this interpreter can load (and those given with --also)."""
    out = ["lzma", *extra]
    probe = {"lzma_mt": "import lzma_mt", "cramjam": "import cramjam",
             "cramjam-rust": "import cramjam_pure_rust"}
    for name, stmt in probe.items():
        if subprocess.run([python, "-c", stmt], capture_output=True).returncode == 0:
            out.append(name)
    return out


def survey(args: argparse.Namespace, files: list[str]) -> None:
    specs = args.decoders or found_decoders(args.python, args.also)
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in specs}
    for _ in range(args.rounds):
        for spec in specs:
            runs[spec].append(child(spec, files, args.threads, args.python))
    first = runs[specs[0]][0]
    print(f"{first['files']} files, {int(first['in_bytes']) / 2**20:.1f} MiB compressed, "
          f"{int(first['out_bytes']) / 2**20:.1f} MiB decompressed; "
          f"{args.threads} thread(s); medians of {args.rounds} rounds, decoders alternating\n")
    base = statistics.median(float(r["cpu"]) for r in runs[specs[0]])
    header = ["decoder", "what", "CPU s", "wall s", f"CPU vs {specs[0]}"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for spec in specs:
        cpu = statistics.median(float(r["cpu"]) for r in runs[spec])
        wall = statistics.median(float(r["wall"]) for r in runs[spec])
        same = {r["out_bytes"] for r in runs[spec]} == {first["out_bytes"]}
        row = [spec, str(runs[spec][0]["what"]) + ("" if same else " (OUTPUT SIZES DIFFER)"), f"{cpu:.2f}",
               f"{wall:.2f}", f"{cpu / base:.2f}"]
        print("| " + " | ".join(row) + " |", flush=True)
    if args.callgrind:
        subset = files[:: args.every]
        reads = instructions("none", subset, args.python)
        print(f"\nInstructions (callgrind, one run each, less a run that only reads the files) on every "
              f"{args.every}th file ({len(subset)} files):\n")
        print("| decoder | Ginstr | vs " + specs[0] + " |")
        print("|---|---|---|")
        counts: dict[str, int] = {}
        for spec in specs:
            counts[spec] = instructions(spec, subset, args.python) - reads
            print(f"| {spec} | {counts[spec] / 1e9:.3f} | {counts[spec] / counts[specs[0]]:.2f} |", flush=True)


def liblzma_dir(path: str) -> str:
    """A directory holding only ``liblzma.so.5`` -> ``path``: first on LD_LIBRARY_PATH, it makes
    _lzma bind to that liblzma (the loader looks there before the system's directories)."""
    libdir = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"xzdecode-{os.getuid()}",
                          hashlib.sha1(os.path.realpath(path).encode()).hexdigest()[:12])
    os.makedirs(libdir, exist_ok=True)
    link = os.path.join(libdir, "liblzma.so.5")
    if not os.path.islink(link):
        os.symlink(os.path.realpath(path), link)
    return libdir


def decoder_env(spec: str) -> dict[str, str]:
    """The environment of a process running decoder ``spec``."""
    env = {k: v for k, v in os.environ.items() if k != "CRAMJAM_BACKEND"}
    if spec.startswith("lzma:"):
        libdir = liblzma_dir(spec.partition(":")[2])
        env["LD_LIBRARY_PATH"] = ":".join(filter(None, [libdir, env.get("LD_LIBRARY_PATH")]))
    return env


def on_liblzma(path: str) -> None:
    """Run this process again with the liblzma at ``path`` (see :func:`liblzma_dir`), unless it already is."""
    if os.environ.get("LD_LIBRARY_PATH", "").split(":")[0] == liblzma_dir(path):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], decoder_env(f"lzma:{path}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", help="a module directory, or .ko.xz files")
    ap.add_argument("--decoder", default="lzma")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="one run, its result as JSON")
    ap.add_argument("--survey", action="store_true", help="every decoder, alternating rounds, medians")
    ap.add_argument("--decoders", nargs="*", help="with --survey: these decoders (default: all found)")
    ap.add_argument("--also", nargs="*", default=[], help="with --survey: more decoders besides those found")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--python", default=sys.executable, help="the interpreter of the decoding processes")
    ap.add_argument("--callgrind", action="store_true", help="with --survey: count instructions too")
    ap.add_argument("--every", type=int, default=10, help="with --callgrind: every N-th file")
    args = ap.parse_args()
    files = module_files(args.paths)
    if not args.survey and args.decoder.startswith("lzma:"):
        on_liblzma(args.decoder.partition(":")[2])  # _lzma binds to the liblzma.so.5 the loader finds first
    if args.survey:
        survey(args, files)
        return
    result = run_once(args.decoder, files, args.threads)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['what']}: {result['files']} files, CPU {float(result['cpu']):.3f} s, "
              f"wall {float(result['wall']):.3f} s ({args.threads} thread(s))")


if __name__ == "__main__":
    main()
