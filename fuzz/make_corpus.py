#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/idx/ and fuzz/corpus/safetensors/ (standard library only).

    python3 fuzz/make_corpus.py

Deterministic (gzip without a timestamp), so rerunning it changes nothing unless this script
changed. The seeds are small valid files plus near misses, one per check the readers make, so the
fuzzer starts next to every error branch instead of having to discover the formats from nothing.
"""
import gzip
import json
import pathlib
import struct

FUZZ_DIR = pathlib.Path(__file__).resolve().parent
IDX_DIR = FUZZ_DIR / "corpus" / "idx"
SAFETENSORS_DIR = FUZZ_DIR / "corpus" / "safetensors"

# fuzz_idx.cpp's mode byte.
IMAGES, LABELS = 0, 1
HARNESS_GZIP = 2
MNIST_SHAPE = 4
CLASSES_256 = 8


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def idx(magic, dims, payload=b""):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


def images(count, side=4):
    pixels = bytes((i * 37 + 11) % 256 for i in range(count * side * side))
    return idx(0x803, [count, side, side], pixels)


def labels(count, classes=10):
    return idx(0x801, [count], bytes(i % classes for i in range(count)))


def idx_seeds():
    seeds = {
        "images_raw": (IMAGES, images(3)),
        "images_harness_gzip": (IMAGES | HARNESS_GZIP, images(3)),
        "images_gzip_in_file": (IMAGES, gz(images(3))),
        "images_mnist": (IMAGES | MNIST_SHAPE, images(1, 28)),
        "images_zero_count": (IMAGES, images(0)),
        "labels_raw": (LABELS, labels(5)),
        "labels_harness_gzip": (LABELS | HARNESS_GZIP, labels(5)),
        "labels_gzip_in_file": (LABELS, gz(labels(5))),
        "labels_256_classes": (LABELS | CLASSES_256, idx(0x801, [4], bytes([0, 9, 200, 255]))),
        # Near misses: one broken promise each.
        "images_truncated": (IMAGES, images(3)[:-5]),
        "images_trailing_byte": (IMAGES, images(3) + b"\0"),
        "images_wrong_size": (IMAGES, idx(0x803, [2, 5, 4], bytes(40))),
        "images_label_magic": (IMAGES, labels(5)),
        "images_float_type": (IMAGES, idx(0xD03, [1, 4, 4], bytes(64))),
        "images_huge_count": (IMAGES, idx(0x803, [0xFFFFFFFF, 4, 4], bytes(32))),
        "images_huge_count_gzip": (IMAGES | HARNESS_GZIP, idx(0x803, [0x00FFFFFF, 4, 4], bytes(32))),
        "images_header_only": (IMAGES, idx(0x803, [1, 4])),
        "images_two_gzip_members": (IMAGES, gz(images(3)[:20]) + gz(images(3)[20:])),
        "images_gzip_then_garbage": (IMAGES, gz(images(3)) + b"garbage"),
        "images_gzip_cut": (IMAGES, gz(images(3))[:-6]),
        "labels_out_of_range": (LABELS, idx(0x801, [3], bytes([1, 10, 2]))),
        "labels_truncated": (LABELS, labels(5)[:-1]),
        "labels_image_magic": (LABELS, images(1)),
        "empty": (IMAGES, b""),
    }
    return {name: bytes([mode]) + data for name, (mode, data) in seeds.items()}


DTYPE = {"F32": "<f", "F64": "<d", "F16": "<e", "I64": "<q", "U64": "<Q", "U8": "<B", "I32": "<i"}


def safetensors(tensors, metadata=None, pad=True):
    """tensors: [(name, dtype, shape, values)] packed in order."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, values in tensors:
        raw = b"".join(struct.pack(DTYPE[dtype], v) for v in values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    return raw_file(json.dumps(header, separators=(",", ":")), data, pad)


def raw_file(header_text, data, pad=True):
    text = header_text.encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def ramp(n, scale=0.125):
    return [scale * (i - n / 2) for i in range(n)]


def tiny_state(float_dtype="F32", counter_dtype="I64"):
    """The whole state of fuzz_safetensors.cpp's TinyNet."""
    return [
        ("conv.weight", float_dtype, [2, 1, 3, 3], ramp(18)),
        ("bn.weight", float_dtype, [2], [1.0, 0.5]),
        ("bn.bias", float_dtype, [2], [0.0, 0.25]),
        ("bn.running_mean", float_dtype, [2], [0.0, 0.125]),
        ("bn.running_var", float_dtype, [2], [1.0, 2.0]),
        ("bn.num_batches_tracked", counter_dtype, [], [7]),
        ("fc.weight", float_dtype, [3, 2], ramp(6)),
        ("fc.bias", float_dtype, [3], [0.5, -0.5, 0.0]),
    ]


def safetensors_seeds():
    tiny = tiny_state()
    with_metadata = {"format": "pt"}
    return {
        "tiny_f32": safetensors(tiny, with_metadata),
        "tiny_f64": safetensors(tiny_state("F64")),
        "tiny_f16_u8_counter": safetensors(tiny_state("F16", "U8")),
        "tiny_unpadded": safetensors(tiny, pad=False),
        "tiny_missing_fc_bias": safetensors(tiny[:-1]),
        "tiny_extra_tensor": safetensors(tiny + [("extra", "I32", [2], [1, 2])]),
        "tiny_wrong_shape": safetensors([("conv.weight", "F32", [2, 9], ramp(18))] + tiny[1:]),
        "tiny_u64_counter": safetensors(tiny[:5] + [("bn.num_batches_tracked", "U64", [], [7])] + tiny[6:]),
        "tiny_float_counter": safetensors(tiny[:5] + [("bn.num_batches_tracked", "F32", [], [7.0])] + tiny[6:]),
        "mnist_conv1_only": safetensors([("conv1.0.weight", "F32", [16, 1, 3, 3], ramp(144))], with_metadata),
        "mnist_bn_counter": safetensors([("conv1.1.num_batches_tracked", "I64", [], [3])]),
        "two_tensors": safetensors([("a", "F32", [2], [1.0, 2.0]), ("b", "I64", [1], [5])], {"k": "v"}),
        "empty_header": raw_file("{}", b""),
        "metadata_only": raw_file('{"__metadata__":{"format":"pt"}}', b""),
        "zero_sized_tensor": safetensors([("z", "F32", [0, 3], []), ("a", "F32", [1], [1.0])]),
        # Near misses: one broken promise each.
        "overlap": raw_file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                            '"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', bytes(4)),
        "hole": raw_file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', bytes(8)),
        "trailing_data": safetensors([("a", "F32", [1], [1.0])]) + b"\0\0\0\0",
        "truncated": safetensors(tiny)[:-3],
        "duplicate_key": raw_file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                  '"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', bytes(4)),
        "unknown_dtype": raw_file('{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', bytes(1)),
        "negative_dim": raw_file('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', bytes(4)),
        "overflowing_shape": raw_file('{"a":{"dtype":"F64","shape":[4294967296,4294967296],'
                                      '"data_offsets":[0,8]}}', bytes(8)),
        "offsets_past_end": raw_file('{"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}}', bytes(8)),
        "huge_header_length": struct.pack("<Q", 1 << 40) + b"{}",
        "not_an_object": raw_file("[1,2,3]", b""),
        "deep_nesting": raw_file('{"a":' * 12 + "1" + "}" * 12, b""),
        "u64_too_large": raw_file('{"a":{"dtype":"U64","shape":[1],"data_offsets":[0,8]}}', b"\xff" * 8),
        "short": b"\x02\0\0",
    }


def write(directory, seeds):
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    for name, data in sorted(seeds.items()):
        assert len(data) < 100_000, name
        (directory / name).write_bytes(data)
    print(f"{directory.relative_to(FUZZ_DIR.parent)}: {len(seeds)} files, {sum(map(len, seeds.values()))} bytes")


if __name__ == "__main__":
    write(IDX_DIR, idx_seeds())
    write(SAFETENSORS_DIR, safetensors_seeds())
