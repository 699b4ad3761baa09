import struct, zipfile, zlib
from pathlib import Path

MiB = 2**20

def zip_bomb(source: Path, out: Path, mib: int) -> None:
    """`source`'s checkpoint with its data.pkl followed by `mib` MiB of zeros (ignored by the unpickler)
    deflated to a few KB: a real decompression bomb torch would unpack whole."""
    with zipfile.ZipFile(source) as src:
        entries = [(i.filename, src.read(i)) for i in src.infolist()]
    name, pickled = next(e for e in entries if e[0].endswith("/data.pkl"))
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MiB)
    first = c.compress(pickled) + c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)
    again = c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)  # the window holds zeros before each repeat
    stream = first + again * (mib - 1) + c.flush()
    crc = zlib.crc32(pickled)
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for n, data in entries:
            dst.writestr(n, stream if n == name else data)
    raw = bytearray(out.read_bytes())
    with zipfile.ZipFile(out) as z:
        offset = z.getinfo(name).header_offset
    size = len(pickled) + mib * MiB
    struct.pack_into("<HHHI", raw, offset + 8, 8, 0, 0, crc)  # method deflate, (time, date kept below)
    struct.pack_into("<I", raw, offset + 22, size)
    central = raw.find(b"PK\x01\x02" + bytes(0), 0)
    while central != -1:
        n_len = struct.unpack_from("<H", raw, central + 28)[0]
        if raw[central + 46: central + 46 + n_len] == name.encode():
            struct.pack_into("<H", raw, central + 10, 8)
            struct.pack_into("<I", raw, central + 16, crc)
            struct.pack_into("<I", raw, central + 24, size)
        central = raw.find(b"PK\x01\x02", central + 4)
    out.write_bytes(bytes(raw))
def png_bomb(path: Path, side: int) -> Path:
    """A grey PNG of side x side zero pixels, a few hundred KB on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    c, row, idat = zlib.compressobj(9), bytes(side + 1), []
    for _ in range(side):
        idat.append(c.compress(row))
    idat.append(c.flush())
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", b"".join(idat)) + chunk(b"IEND", b""))
    return path
